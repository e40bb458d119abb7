// Command latchkey-dev runs Latchkey for local development with nothing but
// Go installed: it starts an embedded control plane (etcd and kube-apiserver
// from the binaries hack/control-plane.sh builds, found through
// KUBEBUILDER_ASSETS), installs the CRDs, writes a kubeconfig for kubectl,
// creates the operator's namespace and runs the operator in-process until
// SIGINT or SIGTERM. Then it stops the manager, then the control plane, and
// removes the kubeconfig, so no etcd or kube-apiserver process is left.
//
// The admission webhook is on: the operator serves it on 127.0.0.1 with its
// self-managed certificate (issued for "localhost", written into a temporary
// directory), and config/webhook's ValidatingWebhookConfiguration is
// installed pointing at https://localhost:<port>/validate-..., so the local
// API server enforces every admission rule as a cluster's would.
//
// `make run` starts it when there is no usable kubeconfig, or with EMBEDDED=1.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/yaml"

	"github.com/latchkey-dev/latchkey/internal/logging"
	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/verifier"
	webhookv1alpha1 "github.com/latchkey-dev/latchkey/internal/webhook/v1alpha1"
)

// config is what the command line sets.
type config struct {
	// kubeconfig is where the kubeconfig for the user is written.
	kubeconfig string
	// crdDir holds the CRD manifests to install.
	crdDir string
	// webhookManifest is config/webhook's ValidatingWebhookConfiguration;
	// webhooks false leaves the admission webhook off.
	webhookManifest string
	webhooks        bool
	// operator configures the in-process operator.
	operator operator.Options
}

func main() {
	var cfg config
	flag.StringVar(&cfg.kubeconfig, "kubeconfig-out", filepath.Join(".kube-local", "kubeconfig"),
		"Where to write the kubeconfig of the embedded control plane (removed on exit).")
	flag.StringVar(&cfg.crdDir, "crd-dir", filepath.Join("config", "crd", "bases"), "Directory of the CRD manifests to install.")
	flag.StringVar(&cfg.webhookManifest, "webhook-manifest", filepath.Join("config", "webhook", "manifests.yaml"),
		"The ValidatingWebhookConfiguration to install, pointed at the local webhook server.")
	flag.BoolVar(&cfg.webhooks, "enable-webhooks", true,
		"Serve the admission webhook on 127.0.0.1 and have the embedded API server call it.")
	flag.StringVar(&cfg.operator.Namespace, "namespace", operator.DefaultNamespace, "The operator's own namespace, created if missing.")
	flag.StringVar(&cfg.operator.MetricsAddr, "metrics-bind-address", "0", "Address of the metrics endpoint; 0 disables it.")
	flag.StringVar(&cfg.operator.ProbeAddr, "health-probe-bind-address", "0", "Address of the health and readiness probes; 0 disables them.")
	flag.StringVar(&cfg.operator.VerifierAddr, "verifier-bind-address", "127.0.0.1:8082", "Address of the verification service; 0 disables it.")
	flag.DurationVar(&cfg.operator.Verifier.MaxStaleness, "max-staleness", verifier.DefaultMaxStaleness,
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

	opts := cfg.operator
	if cfg.webhooks {
		certDir, err := os.MkdirTemp("", "latchkey-webhook-certs-")
		if err != nil {
			return err
		}
		defer func() { _ = os.RemoveAll(certDir) }()
		port, err := freePort()
		if err != nil {
			return err
		}
		if err := installWebhookConfiguration(ctx, c, cfg.webhookManifest, port); err != nil {
			return err
		}
		opts.EnableWebhooks = true
		opts.CertManagement = operator.CertManagementSelf
		opts.WebhookHost, opts.WebhookPort, opts.WebhookCertDir = "127.0.0.1", port, certDir
		// The API server reaches the webhook by URL, so the certificate is
		// issued for that URL's host; with it set, the operator writes the
		// files into certDir itself (no kubelet mounts the Secret here).
		opts.WebhookCertDNSName = webhookHost
	} else {
		opts.EnableWebhooks = false
	}

	// The operator runs until ctx is done; the banner waits until it can
	// admit objects, so that the first kubectl apply is not refused with
	// "failed calling webhook".
	runCtx, stop := context.WithCancel(ctrl.LoggerInto(ctx, log))
	defer stop()
	var runErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		runErr = operator.Run(runCtx, restConfig, opts)
	}()
	if opts.EnableWebhooks {
		if err := waitForWebhook(ctx, c, opts.WebhookPort, done); err != nil {
			// The operator stops before the control plane does.
			stop()
			<-done
			if ctx.Err() != nil {
				return runErr // Ctrl-C while starting
			}
			return errors.Join(err, runErr)
		}
	}

	_, _ = fmt.Fprintf(out, `
Latchkey is running against an embedded control plane at %s.
In another shell:

  export KUBECONFIG=%s
  kubectl apply -f config/samples/
  kubectl get apiclients,credentialgrants

The verification service listens on http://%s (GET /v1/verify).
%s
Press Ctrl-C to stop; the control plane and its data go with it.

`, restConfig.Host, kubeconfig, cfg.operator.VerifierAddr, webhookBanner(opts))

	<-done
	if runErr != nil {
		return runErr
	}
	log.Info("Operator stopped")
	return nil
}

// webhookHost is the host in the webhook URLs and the name on the serving
// certificate: cert-controller issues DNS names only, so not 127.0.0.1.
const webhookHost = "localhost"

func webhookBanner(opts operator.Options) string {
	if !opts.EnableWebhooks {
		return "The admission webhook is off (--enable-webhooks=false): only the CRDs' schema and CEL rules apply."
	}
	return fmt.Sprintf("The admission webhook is on: the API server calls https://%s:%d (docs/admission.md).",
		webhookHost, opts.WebhookPort)
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a port for the webhook: %w", err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// installWebhookConfiguration creates the ValidatingWebhookConfiguration in
// manifest with every webhook's Service reference replaced by the URL
// https://localhost:<port><path>. Its caBundle is left empty: the operator's
// certificate rotator injects its own CA.
func installWebhookConfiguration(ctx context.Context, c client.Client, manifest string, port int) error {
	data, err := os.ReadFile(manifest)
	if err != nil {
		return fmt.Errorf("reading the webhook configuration: %w", err)
	}
	var vwc admissionregistrationv1.ValidatingWebhookConfiguration
	if err := yaml.Unmarshal(data, &vwc); err != nil {
		return fmt.Errorf("decoding %s: %w", manifest, err)
	}
	if vwc.Name != webhookv1alpha1.WebhookConfigurationName || len(vwc.Webhooks) == 0 {
		return fmt.Errorf("%s: want the ValidatingWebhookConfiguration %q with webhooks, found %q with %d",
			manifest, webhookv1alpha1.WebhookConfigurationName, vwc.Name, len(vwc.Webhooks))
	}
	for i := range vwc.Webhooks {
		cc := &vwc.Webhooks[i].ClientConfig
		path := ""
		if cc.Service != nil && cc.Service.Path != nil {
			path = *cc.Service.Path
		}
		url := fmt.Sprintf("https://%s:%d%s", webhookHost, port, path)
		cc.Service, cc.URL, cc.CABundle = nil, &url, nil
	}
	if err := c.Create(ctx, &vwc); err != nil {
		return fmt.Errorf("installing the webhook configuration: %w", err)
	}
	return nil
}

// waitForWebhook returns once the webhook server answers TLS on port with a
// certificate signed by the CA injected into the webhook configuration, or
// the error the operator stopped with.
func waitForWebhook(ctx context.Context, c client.Client, port int, done <-chan struct{}) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if err := webhookServing(ctx, c, port); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			return fmt.Errorf("the admission webhook did not become ready within 2 minutes: %w", err)
		}
		select {
		case <-done:
			return errors.New("the operator stopped before its webhook was ready")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func webhookServing(ctx context.Context, c client.Client, port int) error {
	var vwc admissionregistrationv1.ValidatingWebhookConfiguration
	if err := c.Get(ctx, client.ObjectKey{Name: webhookv1alpha1.WebhookConfigurationName}, &vwc); err != nil {
		return err
	}
	pool := x509.NewCertPool()
	for _, w := range vwc.Webhooks {
		if len(w.ClientConfig.CABundle) == 0 || !pool.AppendCertsFromPEM(w.ClientConfig.CABundle) {
			return fmt.Errorf("webhook %s has no CA bundle yet", w.Name)
		}
	}
	d := tls.Dialer{Config: &tls.Config{RootCAs: pool, ServerName: webhookHost, MinVersion: tls.VersionTLS12}}
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return err
	}
	return conn.Close()
}
