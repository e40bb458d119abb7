// Package logging builds the logger of every Latchkey binary (the manager,
// latchkey-dev, the kubectl-latchkey CLI) and of the envtest suites, so that
// all of them share one rule: no log line is ever written above
// MaxVerbosity, whatever the flags ask for.
//
// The rule exists because of the Kubernetes client library. client-go's REST
// client logs every request and response body at verbosity 8 and above
// (rest.logBody: "Request Body" and "Response Body", the body as text or as
// an encoding/hex dump), response headers at 8 and a curl command at 9. It
// logs through the contextual logr logger found in the request's context,
// which is the operator's own logger, and through klog. A body is whatever
// the API server sends or receives: consumer Secrets (their data in base64),
// backing-token hashes, user-chosen secrets. At --zap-log-level=10 they would
// all end up in the log.
//
// Three things keep them out:
//
//   - Cap wraps a logr.Logger so that V(n) with n > MaxVerbosity is disabled
//     (Enabled reports false, so client-go does not even format the body) and
//     dropped, however verbose the underlying zap logger is. WithValues,
//     WithName and WithCallDepth keep the cap.
//   - The capped sink also drops any message that is a client-go body line
//     ("Request Body", "Response Body"), at any verbosity: a body that reaches
//     the logger by another route (klog's -vmodule, a future client-go that
//     logs bodies lower) is still not written.
//   - klog is routed through the capped logger (klog.SetLoggerWithOptions,
//     also as the contextual fallback logger) and klog's own -v is capped at
//     MaxVerbosity by SetKlogVerbosity: klog forwards its V(n) lines to the
//     backing logger at level 0, so the cap on the logr sink alone would not
//     stop a klog.V(8) line.
//
// Up to MaxVerbosity (7) client-go still logs what is useful to debug API
// calls: at 6 each request's verb, URL, status and latency, at 7 the request
// headers with the Authorization value masked, and the response status.
package logging

import (
	"flag"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/go-logr/logr"
	"go.uber.org/zap/zapcore"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// MaxVerbosity is the highest verbosity any Latchkey logger emits. It is
// below client-go's body level (8: "Request Body" and "Response Body", also
// response headers; 9: curl commands), so --zap-log-level=10 or -v=10 logs
// exactly what 7 logs.
const MaxVerbosity = 7

// bodyMessages are the messages client-go logs a request or response body
// with (k8s.io/client-go/rest.logBody). They are dropped at any verbosity.
var bodyMessages = []string{"Request Body", "Response Body"}

// Cap returns l limited to MaxVerbosity: V(n) for n > MaxVerbosity is
// disabled, and client-go body lines are dropped. Capping a capped logger
// returns it unchanged.
func Cap(l logr.Logger) logr.Logger {
	sink := l.GetSink()
	if sink == nil {
		return l
	}
	if _, ok := sink.(*cappedSink); ok {
		return l
	}
	// The wrapper adds one frame between the caller and the real sink.
	if cd, ok := sink.(logr.CallDepthLogSink); ok {
		sink = cd.WithCallDepth(1)
	}
	// logr.New would call Init on the sink, which the wrapped logger's sink
	// already had; cappedSink.Init does nothing, so the depth stays right.
	return logr.New(&cappedSink{sink: sink}).V(l.GetV())
}

// cappedSink is the LogSink of Cap.
type cappedSink struct {
	sink logr.LogSink
}

var (
	_ logr.LogSink                = (*cappedSink)(nil)
	_ logr.CallDepthLogSink       = (*cappedSink)(nil)
	_ logr.CallStackHelperLogSink = (*cappedSink)(nil)
)

// Init does nothing: the wrapped sink was initialised when its logger was
// built.
func (s *cappedSink) Init(logr.RuntimeInfo) {}

// Enabled reports false above MaxVerbosity, so callers such as client-go do
// not even format what they would log.
func (s *cappedSink) Enabled(level int) bool {
	return level <= MaxVerbosity && s.sink.Enabled(level)
}

// Info drops lines above MaxVerbosity and client-go body lines.
func (s *cappedSink) Info(level int, msg string, keysAndValues ...any) {
	if level > MaxVerbosity || isBody(msg) {
		return
	}
	s.sink.Info(level, msg, keysAndValues...)
}

// Error is always written (errors have no verbosity), except a body line.
func (s *cappedSink) Error(err error, msg string, keysAndValues ...any) {
	if isBody(msg) {
		return
	}
	s.sink.Error(err, msg, keysAndValues...)
}

func (s *cappedSink) WithValues(keysAndValues ...any) logr.LogSink {
	return &cappedSink{sink: s.sink.WithValues(keysAndValues...)}
}

func (s *cappedSink) WithName(name string) logr.LogSink {
	return &cappedSink{sink: s.sink.WithName(name)}
}

func (s *cappedSink) WithCallDepth(depth int) logr.LogSink {
	if cd, ok := s.sink.(logr.CallDepthLogSink); ok {
		return &cappedSink{sink: cd.WithCallDepth(depth)}
	}
	return s
}

func (s *cappedSink) GetCallStackHelper() func() {
	if h, ok := s.sink.(logr.CallStackHelperLogSink); ok {
		return h.GetCallStackHelper()
	}
	return func() {}
}

// isBody reports whether msg is a client-go body line: the structured
// message itself, or klog's formatted "Response Body: ..." form.
func isBody(msg string) bool {
	for _, m := range bodyMessages {
		if strings.HasPrefix(msg, m) {
			return true
		}
	}
	return false
}

// New builds the capped logger of a binary from controller-runtime's zap
// options (bound to --zap-log-level and friends), routes klog through it and
// sets klog's verbosity to the logger's, capped: --zap-log-level=10 turns on
// client-go's request logging up to MaxVerbosity, and never its bodies. It
// changes klog's process-wide state; call it once, before logging starts.
func New(opts *zap.Options) logr.Logger {
	base := zap.New(zap.UseFlagOptions(opts))
	l := Cap(base)
	RouteKlog(l, verbosity(base))
	return l
}

// NewCLI builds the logger of the command-line tool for its -v flag:
// client-go's request logging at that verbosity (capped at MaxVerbosity) as
// text lines on w, with klog routed through it. Like New it changes klog's
// process-wide state.
func NewCLI(v int, w io.Writer) logr.Logger {
	v = max(0, min(v, MaxVerbosity))
	l := Cap(zap.New(zap.UseFlagOptions(&zap.Options{
		Development:     true,
		DestWriter:      w,
		Level:           zapcore.Level(-v),
		StacktraceLevel: zapcore.PanicLevel,
	})))
	RouteKlog(l, v)
	return l
}

// RouteKlog makes klog write through l (capped first), also as the logger
// client-go finds when a request's context carries none, and sets klog's
// verbosity to v, capped at MaxVerbosity.
func RouteKlog(l logr.Logger, v int) {
	klog.SetLoggerWithOptions(Cap(l), klog.ContextualLogger(true))
	SetKlogVerbosity(v)
}

var (
	klogFlagsOnce sync.Once
	klogFlags     *flag.FlagSet
	klogMu        sync.Mutex
)

// SetKlogVerbosity sets klog's -v to min(v, MaxVerbosity) and returns what
// it set. client-go decides from klog's -v (at 6 and above) whether to wrap
// its transport in the request-logging round tripper, and klog passes its
// own V(n) lines to the backing logger at level 0: this is where they are
// capped.
func SetKlogVerbosity(v int) int {
	v = max(0, min(v, MaxVerbosity))
	klogFlagsOnce.Do(func() {
		klogFlags = flag.NewFlagSet("klog", flag.ContinueOnError)
		klog.InitFlags(klogFlags)
	})
	klogMu.Lock()
	defer klogMu.Unlock()
	// Cannot fail: "v" is klog's verbosity flag and v an integer.
	_ = klogFlags.Set("v", strconv.Itoa(v))
	return v
}

// KlogVerbosity is klog's current -v.
func KlogVerbosity() int {
	for v := MaxVerbosity; v > 0; v-- {
		if klog.V(klog.Level(v)).Enabled() {
			return v
		}
	}
	return 0
}

// verbosity is the highest V(n), up to MaxVerbosity, that l writes.
func verbosity(l logr.Logger) int {
	for v := MaxVerbosity; v > 0; v-- {
		if l.V(v).Enabled() {
			return v
		}
	}
	return 0
}
