// Command manager runs the Latchkey operator: the ApiClient and
// CredentialGrant controllers and the admission webhook.
package main

import (
	"flag"
	"os"
	"strings"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/latchkey-dev/latchkey/internal/operator"
)

func main() {
	var opts operator.Options
	var watch string
	flag.StringVar(&opts.Namespace, "namespace", envOr("POD_NAMESPACE", operator.DefaultNamespace),
		"The operator's own namespace, where backing tokens and the webhook certificate are kept.")
	flag.StringVar(&watch, "watch-namespaces", "",
		"Comma-separated namespaces to manage (namespaced mode). Empty: all namespaces.")
	flag.StringVar(&opts.MetricsAddr, "metrics-bind-address", ":8080", "Address of the metrics endpoint; 0 disables it.")
	flag.StringVar(&opts.ProbeAddr, "health-probe-bind-address", ":8081", "Address of the health and readiness probes.")
	flag.BoolVar(&opts.LeaderElection, "leader-elect", false, "Elect a leader so only one replica runs the controllers.")
	flag.BoolVar(&opts.EnableWebhooks, "enable-webhooks", true, "Serve the validating admission webhook.")
	flag.IntVar(&opts.WebhookPort, "webhook-port", 9443, "Port of the admission webhook server.")
	flag.StringVar(&opts.WebhookCertDir, "webhook-cert-dir", "", "Directory of the webhook serving certificate (tls.crt, tls.key).")
	qps := flag.Float64("kube-api-qps", 50, "Queries per second to the API server.")
	flag.IntVar(&opts.Burst, "kube-api-burst", 100, "Burst of queries to the API server.")
	flag.IntVar(&opts.MaxConcurrentReconciles, "max-concurrent-reconciles", 4, "Parallel reconciles per controller.")
	flag.BoolVar(&opts.EnableHTTP2, "enable-http2", false, "Serve HTTP/2 on the webhook and metrics servers.")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()

	opts.QPS = float32(*qps)
	if watch != "" {
		opts.WatchNamespaces = strings.Split(watch, ",")
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")

	ctx := ctrl.SetupSignalHandler()
	if err := operator.Run(ctrl.LoggerInto(ctx, log), ctrl.GetConfigOrDie(), opts); err != nil {
		log.Error(err, "Manager exited with an error")
		os.Exit(1)
	}
}

func envOr(key, fallback string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return fallback
}
