// Package testenv starts a real control plane (etcd and kube-apiserver built
// by hack/control-plane.sh, found through KUBEBUILDER_ASSETS) with Latchkey's
// CRDs installed, for the envtest suites of every package. It refuses to fall
// back to anything else: a suite that cannot reach a real API server fails.
package testenv

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/latchkey-dev/latchkey/internal/logging"
	"github.com/latchkey-dev/latchkey/internal/operator"
	uberzap "go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Env is a running control plane with Latchkey's CRDs.
type Env struct {
	*envtest.Environment
	// Config reaches the API server as an administrator.
	Config *rest.Config
	// Client is an uncached client for test set-up and assertions.
	Client client.Client
	// certDir is the API server's certificate directory, chosen here so
	// that it survives RestartAPIServer (envtest deletes a directory it
	// chose itself on every stop, and a restart would then serve a new CA).
	certDir string
}

// Options for Start.
type Options struct {
	// Webhooks installs config/webhook's ValidatingWebhookConfiguration,
	// pointed at a local serving address the manager must listen on
	// (WebhookInstallOptions.LocalServing*).
	Webhooks bool
}

// RepoRoot is the repository's top directory, found from this file.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Start brings up etcd and kube-apiserver with the CRDs installed.
func Start(opts Options) (*Env, error) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return nil, fmt.Errorf("KUBEBUILDER_ASSETS is not set: run the tests with 'make test', or export KUBEBUILDER_ASSETS=$(hack/control-plane.sh)")
	}
	// The production logger (internal/logging), with its verbosity cap.
	logf.SetLogger(logging.New(&zap.Options{DestWriter: Logs, Development: true, Level: LogLevel}))
	root := RepoRoot()
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                operator.NewScheme(),
	}
	certDir, err := os.MkdirTemp("", "latchkey-apiserver-")
	if err != nil {
		return nil, err
	}
	env.ControlPlane.GetAPIServer().CertDir = certDir
	// etcd's default quota (2 GiB) is less than make bench-scale N=50000
	// writes with its unrelated Secrets; 8 GiB is etcd's suggested maximum.
	// A quota is a bound, not an allocation.
	if env.ControlPlane.Etcd == nil {
		env.ControlPlane.Etcd = &envtest.Etcd{}
	}
	env.ControlPlane.Etcd.Configure().Set("quota-backend-bytes", strconv.Itoa(8<<30))
	if opts.Webhooks {
		env.WebhookInstallOptions = envtest.WebhookInstallOptions{
			Paths: []string{filepath.Join(root, "config", "webhook")},
		}
	}
	cfg, err := env.Start()
	if err != nil {
		// Start may fail after etcd and kube-apiserver are up (a CRD that
		// does not install): never leave them running.
		_ = env.Stop()
		_ = os.RemoveAll(certDir)
		return nil, fmt.Errorf("starting the control plane: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		_ = env.Stop()
		_ = os.RemoveAll(certDir)
		return nil, err
	}
	return &Env{Environment: env, Config: cfg, Client: c, certDir: certDir}, nil
}

// Stop stops kube-apiserver and etcd and removes their files.
func (e *Env) Stop() error {
	err := e.Environment.Stop()
	_ = os.RemoveAll(e.certDir)
	return err
}

// RestartAPIServer stops kube-apiserver and starts it again on the same
// etcd, address and certificates, as a control-plane upgrade or a crash
// does: Config and Client work again once it returns. Its watch cache starts
// empty, so a watch resumed from a resourceVersion older than the restart
// gets 410 Gone ("too old resource version"). Tests that call it must not
// run in parallel with others of their package.
func (e *Env) RestartAPIServer() error {
	s := e.ControlPlane.GetAPIServer()
	if err := s.Stop(); err != nil {
		return fmt.Errorf("stopping kube-apiserver: %w", err)
	}
	if err := s.Start(); err != nil {
		return fmt.Errorf("starting kube-apiserver again: %w", err)
	}
	return nil
}

// EtcdURL is the client URL of the control plane's etcd.
func (e *Env) EtcdURL() string { return e.ControlPlane.Etcd.URL.String() }

// Main is a TestMain body: it starts the control plane, runs the package's
// tests and stops it. The Env is stored in *out for the tests.
func Main(m *testing.M, out **Env, opts Options) {
	env, err := Start(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	*out = env
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping the control plane:", err)
	}
	os.Exit(code)
}

// RunWhileStarting is a TestMain body for suites that must also build
// something (binaries, a release): prepare runs while the control plane
// starts, the tests run once both are done, and the control plane is stopped
// after. It returns the exit code.
func RunWhileStarting(m *testing.M, out **Env, opts Options, prepare func() error) int {
	var prepErr error
	var wg sync.WaitGroup
	wg.Go(func() { prepErr = prepare() })
	e, err := Start(opts)
	wg.Wait()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := e.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the control plane:", err)
		}
	}()
	if prepErr != nil {
		fmt.Fprintln(os.Stderr, prepErr)
		return 1
	}
	*out = e
	return m.Run()
}

var nsCounter atomic.Int64

// Namespace creates a fresh namespace for one test and deletes it after.
func (e *Env) Namespace(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d-%s", nsCounter.Add(1), strings.ToLower(sanitize(t.Name())))
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-")
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := e.Client.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
	t.Cleanup(func() { _ = e.Client.Delete(context.Background(), ns) })
	return name
}

// EnsureNamespace creates the namespace if it does not exist.
func (e *Env) EnsureNamespace(ctx context.Context, name string) error {
	err := e.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if err != nil && !strings.Contains(err.Error(), "already exists") {
		return err
	}
	return nil
}

// StartManager runs Latchkey's manager (exactly what cmd/ runs) against the
// control plane until the test ends. Metrics and probes are off unless set.
func (e *Env) StartManager(t testing.TB, opts operator.Options) ctrl.Manager {
	t.Helper()
	if opts.MetricsAddr == "" {
		opts.MetricsAddr = "0"
	}
	if opts.EnableWebhooks {
		w := e.WebhookInstallOptions
		opts.WebhookHost, opts.WebhookPort, opts.WebhookCertDir = w.LocalServingHost, w.LocalServingPort, w.LocalServingCertDir
		if opts.CertManagement == "" {
			// envtest's own CA signed the certificate in LocalServingCertDir
			// and is in the installed caBundle: certificates are provided.
			opts.CertManagement = operator.CertManagementCertManager
		}
	}
	opts.SkipControllerNameValidation = true
	opts.Defaults()
	if err := e.EnsureNamespace(context.Background(), opts.Namespace); err != nil {
		t.Fatalf("creating operator namespace: %v", err)
	}
	mgr, err := operator.NewManager(e.Config, opts)
	if err != nil {
		t.Fatalf("building manager: %v", err)
	}
	RunManager(t, mgr)
	return mgr
}

// RunManager starts mgr and waits for its cache; the returned stop (also run
// when the test ends) cancels it and waits until it has stopped, so a test
// can restart the operator.
func RunManager(t testing.TB, mgr ctrl.Manager) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctrl.LoggerInto(context.Background(), ctrl.Log.WithName("manager")))
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("manager: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("manager did not stop within 30s")
			}
		})
	}
	t.Cleanup(stop)
	syncCtx, syncCancel := context.WithTimeout(ctx, 30*time.Second)
	defer syncCancel()
	if !mgr.GetCache().WaitForCacheSync(syncCtx) {
		t.Fatalf("manager cache did not sync")
	}
	return stop
}

func sanitize(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	return strings.Trim(b.String(), "-")
}

// LogLevel is the verbosity of every logger the tests build: errors only, or
// everything with LATCHKEY_TEST_LOG=debug. Tests may raise it for a while.
var LogLevel = uberzap.NewAtomicLevelAt(defaultLevel())

// Logs receives every log line; tests can Tee it to capture the output.
var Logs = &LogSink{w: os.Stderr}

// LogSink is a log destination that tests can tap.
type LogSink struct {
	mu  sync.Mutex
	w   io.Writer
	tap io.Writer
}

// Write implements io.Writer.
func (s *LogSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tap != nil {
		_, _ = s.tap.Write(p)
	}
	if LogLevel.Level() < zapcore.ErrorLevel && os.Getenv("LATCHKEY_TEST_LOG") != "debug" {
		return len(p), nil // captured for a test, not for the console
	}
	return s.w.Write(p)
}

// Tap copies every log line to w until the returned function is called.
func (s *LogSink) Tap(w io.Writer) (untap func()) {
	s.mu.Lock()
	s.tap = w
	s.mu.Unlock()
	return func() { s.mu.Lock(); s.tap = nil; s.mu.Unlock() }
}

func defaultLevel() zapcore.Level {
	if os.Getenv("LATCHKEY_TEST_LOG") == "debug" {
		return -10
	}
	return zapcore.ErrorLevel
}
