package logging_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr"
	uberzap "go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/latchkey-dev/latchkey/internal/logging"
)

// syncBuffer is a bytes.Buffer safe for a logger and a reading test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// level10 is what --zap-log-level=10 sets.
func level10(w io.Writer) *zap.Options {
	return &zap.Options{DestWriter: w, Level: zapcore.Level(-10)}
}

// lines counts the log lines whose message is msg.
func lines(out, msg string) int {
	return strings.Count(out, `"msg":"`+msg+`"`)
}

func TestCapDropsAboveMaxVerbosityAtLevel10(t *testing.T) {
	var buf syncBuffer
	l := logging.New(level10(&buf))
	for v := 0; v <= 10; v++ {
		l.V(v).Info(fmt.Sprintf("line at V(%d)", v))
		if got, want := l.V(v).Enabled(), v <= logging.MaxVerbosity; got != want {
			t.Errorf("V(%d).Enabled() = %v, want %v", v, got, want)
		}
	}
	out := buf.String()
	for v := 0; v <= 10; v++ {
		want := 0
		if v <= logging.MaxVerbosity {
			want = 1
		}
		if got := lines(out, fmt.Sprintf("line at V(%d)", v)); got != want {
			t.Errorf("V(%d) line written %d times at --zap-log-level=10, want %d:\n%s", v, got, want, out)
		}
	}
	if logging.MaxVerbosity >= 8 {
		t.Fatalf("MaxVerbosity %d reaches client-go's body level 8", logging.MaxVerbosity)
	}
}

func TestCapSurvivesWithValuesWithNameAndV(t *testing.T) {
	var buf syncBuffer
	root := logging.New(level10(&buf))
	for name, l := range map[string]logr.Logger{
		"WithValues":              root.WithValues("k", "v"),
		"WithName":                root.WithName("child"),
		"WithName.WithValues":     root.WithName("a").WithValues("k", "v").WithName("b"),
		"WithCallDepth":           root.WithCallDepth(1),
		"V(5)":                    root.V(5), // V(8) is V(13), V(1) is V(6)
		"Cap(Cap(l))":             logging.Cap(logging.Cap(root)),
		"FromContext(NewContext)": logr.FromContextOrDiscard(logr.NewContext(context.Background(), root.WithName("ctx"))),
	} {
		l.V(8).Info("drop-me-" + name)
		l.V(10).Info("drop-me-" + name)
		l.V(1).Info("keep-me-" + name)
		if l.V(8).Enabled() {
			t.Errorf("%s: V(8) is enabled", name)
		}
	}
	out := buf.String()
	for _, name := range []string{"WithValues", "WithName", "WithName.WithValues", "WithCallDepth", "Cap(Cap(l))", "FromContext(NewContext)"} {
		if lines(out, "keep-me-"+name) != 1 {
			t.Errorf("%s: the V(1) line is missing:\n%s", name, out)
		}
	}
	if lines(out, "keep-me-V(5)") != 1 {
		t.Errorf("V(5).V(1) = V(6) is missing:\n%s", out)
	}
	root.V(5).V(3).Info("drop-me-V(5).V(3)")
	if root.V(5).V(3).Enabled() {
		t.Error("V(5).V(3) = V(8) is enabled")
	}
	out = buf.String()
	if strings.Contains(out, "drop-me-") {
		t.Errorf("a line above V(%d) was written:\n%s", logging.MaxVerbosity, out)
	}
	if !strings.Contains(out, `"logger":"a.b"`) || !strings.Contains(out, `"k":"v"`) {
		t.Errorf("names and values are not passed on:\n%s", out)
	}
}

func TestCapDropsClientGoBodyLinesAtAnyLevel(t *testing.T) {
	var buf syncBuffer
	l := logging.New(level10(&buf))
	l.Info("Request Body", "body", "SECRET-AT-V0")
	l.V(1).Info("Response Body", "body", "SECRET-AT-V1")
	l.Info("Response Body: SECRET-KLOG-FORMAT")
	l.Error(nil, "Response Body", "body", "SECRET-AS-ERROR")
	l.Info("Request", "verb", "GET")
	out := buf.String()
	if strings.Contains(out, "SECRET") {
		t.Errorf("a body line was written:\n%s", out)
	}
	if lines(out, "Request") != 1 {
		t.Errorf("an ordinary line was dropped:\n%s", out)
	}
}

func TestCapKeepsTheCaller(t *testing.T) {
	var buf syncBuffer
	l := logging.New(&zap.Options{DestWriter: &buf, Level: zapcore.Level(-10), ZapOpts: []uberzap.Option{uberzap.AddCaller()}})
	l.Info("where am I")
	l.WithName("n").WithValues("a", 1).V(2).Info("and now")
	out := buf.String()
	if n := strings.Count(out, "logging/logging_test.go:"); n != 2 {
		t.Errorf("want both lines attributed to logging_test.go, got %d:\n%s", n, out)
	}
}

func TestKlogIsRoutedAndCapped(t *testing.T) {
	defer logging.SetKlogVerbosity(0)
	var buf syncBuffer
	logging.New(level10(&buf))
	if got := logging.KlogVerbosity(); got != logging.MaxVerbosity {
		t.Errorf("klog -v after --zap-log-level=10 is %d, want %d", got, logging.MaxVerbosity)
	}
	// Someone asks klog for -v=10: it gets MaxVerbosity.
	if got := logging.SetKlogVerbosity(10); got != logging.MaxVerbosity {
		t.Errorf("SetKlogVerbosity(10) set %d", got)
	}
	for v := 0; v <= 10; v++ {
		klog.V(klog.Level(v)).InfoS(fmt.Sprintf("klog line at V(%d)", v))
		klog.V(klog.Level(v)).Infof("klog printf at V(%d)", v)
		klog.Background().V(v).Info(fmt.Sprintf("klog background at V(%d)", v))
		klog.FromContext(context.Background()).V(v).Info(fmt.Sprintf("klog context at V(%d)", v))
	}
	if klog.V(8).Enabled() {
		t.Error("klog.V(8) is enabled")
	}
	out := buf.String()
	for v := 0; v <= 10; v++ {
		want := 0
		if v <= logging.MaxVerbosity {
			want = 1
		}
		for _, msg := range []string{"klog line at V(%d)", "klog printf at V(%d)", "klog background at V(%d)", "klog context at V(%d)"} {
			if got := lines(out, fmt.Sprintf(msg, v)); got != want {
				t.Errorf("%q written %d times, want %d", fmt.Sprintf(msg, v), got, want)
			}
		}
	}
	if t.Failed() {
		t.Log(out)
	}
}

func TestNewCLI(t *testing.T) {
	defer logging.SetKlogVerbosity(0)
	var buf syncBuffer
	l := logging.NewCLI(10, &buf)
	l.V(7).Info("cli line at V(7)")
	l.V(8).Info("cli line at V(8)")
	klog.V(8).InfoS("klog line at V(8)")
	klog.V(3).InfoS("klog line at V(3)")
	out := buf.String()
	if !strings.Contains(out, "cli line at V(7)") || !strings.Contains(out, "klog line at V(3)") {
		t.Errorf("-v=10 lost lines up to V(%d):\n%s", logging.MaxVerbosity, out)
	}
	if strings.Contains(out, "V(8)") {
		t.Errorf("-v=10 wrote a V(8) line:\n%s", out)
	}
	quiet := &syncBuffer{}
	l = logging.NewCLI(0, quiet)
	l.V(1).Info("quiet")
	klog.V(1).InfoS("quiet")
	if out := quiet.String(); out != "" {
		t.Errorf("-v=0 wrote debug lines:\n%s", out)
	}
}

// TestClientGoBodiesNeverLogged runs client-go's REST client against a fake
// API server that returns and accepts a Secret, with every logger at
// verbosity 10. Uncapped, the Secret's data is in the log (the control that
// shows the test can see a leak); capped, only the request lines are.
func TestClientGoBodiesNeverLogged(t *testing.T) {
	defer logging.SetKlogVerbosity(0)
	const secret = "s3cr3t-value-that-must-stay-out-of-logs"
	const bearer = "bearer-token-of-the-operator-0123456789"
	b64 := base64.StdEncoding.EncodeToString([]byte(secret))
	body := fmt.Sprintf(`{"kind":"Secret","apiVersion":"v1","metadata":{"name":"s","namespace":"ns"},"data":{"client_secret":%q}}`, b64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusCreated)
		}
		_, _ = io.WriteString(w, body)
	}))
	defer srv.Close()

	call := func(t *testing.T, l logr.Logger) {
		t.Helper()
		// Built after klog's -v is set: client-go adds its request-logging
		// round tripper when klog.V(6) is on.
		cs, err := kubernetes.NewForConfig(&rest.Config{Host: srv.URL, BearerToken: bearer})
		if err != nil {
			t.Fatal(err)
		}
		ctx := logr.NewContext(context.Background(), l.WithName("client"))
		if _, err := cs.CoreV1().Secrets("ns").Get(ctx, "s", metav1.GetOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := cs.CoreV1().Secrets("ns").Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns"},
			StringData: map[string]string{"client_secret": secret},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// And through klog's fallback logger (a context without a logger).
		if _, err := cs.CoreV1().Secrets("ns").Get(context.Background(), "s", metav1.GetOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	leaks := func(out string) []string {
		var found []string
		for what, s := range map[string]string{"secret": secret, "secret as base64": b64, "bearer token": bearer} {
			if strings.Contains(out, s) {
				found = append(found, what)
			}
		}
		return found
	}

	t.Run("uncapped zap at level 10 leaks (control)", func(t *testing.T) {
		var buf syncBuffer
		raw := zap.New(zap.UseFlagOptions(level10(&buf)))
		klog.SetLoggerWithOptions(raw, klog.ContextualLogger(true))
		defer klog.ClearLogger()
		call(t, raw)
		out := buf.String()
		if lines(out, "Response Body") == 0 || len(leaks(out)) == 0 {
			t.Fatalf("without the cap client-go should log the Secret's body at level 10; the test cannot see leaks:\n%s", out)
		}
	})

	t.Run("capped", func(t *testing.T) {
		var buf syncBuffer
		l := logging.New(level10(&buf))
		logging.SetKlogVerbosity(10)
		call(t, l)
		out := buf.String()
		if found := leaks(out); len(found) > 0 {
			t.Errorf("client-go logged %v at --zap-log-level=10:\n%s", found, out)
		}
		if strings.Contains(out, "Body") {
			t.Errorf("a body line was written:\n%s", out)
		}
		// What is left to debug API calls: the request lines (V(6), V(7)),
		// with the Authorization header masked.
		if !regexp.MustCompile(`"msg":"Request".*"verb":"GET".*/api/v1/namespaces/ns/secrets/s`).MatchString(out) {
			t.Errorf("client-go's request line (V(7)) is missing:\n%s", out)
		}
		if !strings.Contains(out, "Bearer <masked>") {
			t.Errorf("request headers (V(7)) with the masked Authorization are missing:\n%s", out)
		}
	})
}
