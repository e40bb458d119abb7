// Command latchkey-dev runs Latchkey for local development with nothing but
// Go installed: it starts an embedded control plane (etcd and kube-apiserver
// from the binaries hack/control-plane.sh builds, found through
// KUBEBUILDER_ASSETS), installs the CRDs, writes a kubeconfig for kubectl,
// creates the operator's namespace and runs the operator in-process until
// SIGINT or SIGTERM. Then it stops the manager, then the control plane, and
// removes the kubeconfig, so no etcd or kube-apiserver process is left.
//
// `make run` starts it when there is no usable kubeconfig, or with EMBEDDED=1.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/latchkey-dev/latchkey/internal/logging"
	"github.com/latchkey-dev/latchkey/internal/operator"
)

// config is what the command line sets.
type config struct {
	// kubeconfig is where the kubeconfig for the user is written.
	kubeconfig string
	// crdDir holds the CRD manifests to install.
	crdDir string
	// operator configures the in-process operator.
	operator operator.Options
}

func main() {
	var cfg config
	flag.StringVar(&cfg.kubeconfig, "kubeconfig-out", filepath.Join(".kube-local", "kubeconfig"),
		"Where to write the kubeconfig of the embedded control plane (removed on exit).")
	flag.StringVar(&cfg.crdDir, "crd-dir", filepath.Join("config", "crd", "bases"), "Directory of the CRD manifests to install.")
	flag.StringVar(&cfg.operator.Namespace, "namespace", operator.DefaultNamespace, "The operator's own namespace, created if missing.")
	flag.StringVar(&cfg.operator.MetricsAddr, "metrics-bind-address", "0", "Address of the metrics endpoint; 0 disables it.")
	flag.StringVar(&cfg.operator.ProbeAddr, "health-probe-bind-address", "0", "Address of the health and readiness probes; 0 disables them.")
	flag.StringVar(&cfg.operator.VerifierAddr, "verifier-bind-address", "127.0.0.1:8082", "Address of the verification service; 0 disables it.")
	flag.DurationVar(&cfg.operator.Verifier.MaxStaleness, "max-staleness", 5*time.Minute,
		"The verifier answers 503 when its view of the cluster may be older than this; 0 disables the bound.")
	zapOpts := zap.Options{Development: true}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	// Capped at logging.MaxVerbosity whatever --zap-log-level says: client-go
	// logs request and response bodies (Secrets) above it.
	ctrl.SetLogger(logging.New(&zapOpts))

	ctx, cancel := context.WithCancel(context.Background())
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-signals
		cancel()
		// The control plane runs in its own process group, so a terminal's
		// Ctrl-C does not reach it: only this process can stop it. Further
		// signals therefore do not abort the shutdown, which would leave etcd
		// and kube-apiserver running.
		for range signals {
			fmt.Fprintln(os.Stderr, "latchkey-dev: still stopping the operator and the control plane")
		}
	}()

	if err := run(ctx, cfg, os.Stdout); err != nil {
		ctrl.Log.Error(err, "latchkey-dev failed")
		os.Exit(1)
	}
}

// run starts the control plane and the operator and blocks until ctx is
// done, then stops both. It prints the kubeconfig's path to out.
func run(ctx context.Context, cfg config, out io.Writer) (err error) {
	log := ctrl.Log.WithName("latchkey-dev")
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return errors.New("KUBEBUILDER_ASSETS is not set: use 'make run', or export KUBEBUILDER_ASSETS=$(hack/control-plane.sh)")
	}
	kubeconfig, err := filepath.Abs(cfg.kubeconfig)
	if err != nil {
		return err
	}

	log.Info("Starting the embedded control plane")
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{cfg.crdDir},
		ErrorIfCRDPathMissing: true,
		Scheme:                operator.NewScheme(),
	}
	restConfig, err := env.Start()
	if err != nil {
		// Start can fail after etcd and kube-apiserver are up (a CRD that
		// does not install): stop whatever did start.
		return errors.Join(fmt.Errorf("starting the control plane: %w", err), env.Stop())
	}
	defer func() {
		log.Info("Stopping the control plane")
		if stopErr := env.Stop(); stopErr != nil {
			err = errors.Join(err, fmt.Errorf("stopping the control plane: %w", stopErr))
		}
		_ = os.Remove(kubeconfig)
	}()

	if err := os.MkdirAll(filepath.Dir(kubeconfig), 0o700); err != nil {
		return err
	}
	// The kubeconfig holds an administrator's client key: owner-only.
	if err := os.WriteFile(kubeconfig, env.KubeConfig, 0o600); err != nil {
		return fmt.Errorf("writing the kubeconfig: %w", err)
	}
	c, err := client.New(restConfig, client.Options{Scheme: env.Scheme})
	if err != nil {
		return err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: cfg.operator.Namespace}}
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", ns.Name, err)
	}

	_, _ = fmt.Fprintf(out, `
Latchkey is running against an embedded control plane at %s.
In another shell:

  export KUBECONFIG=%s
  kubectl apply -f config/samples/
  kubectl get apiclients,credentialgrants

The verification service listens on http://%s (GET /v1/verify).
Press Ctrl-C to stop; the control plane and its data go with it.

`, restConfig.Host, kubeconfig, cfg.operator.VerifierAddr)

	// The admission webhook is not served here: the API server would need a
	// Service or URL with a serving certificate it trusts. The CRDs' schema
	// and CEL rules are enforced without it.
	opts := cfg.operator
	opts.EnableWebhooks = false
	if err := operator.Run(ctrl.LoggerInto(ctx, log), restConfig, opts); err != nil {
		return err
	}
	log.Info("Operator stopped")
	return nil
}
