package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/verifier"
)

// The HTTP scenarios driven by wrk run against a child process of this
// command (-serve): a verifier-only manager and two null handlers, all
// behind verifier.NewHTTPServer, in one Go process pinned to CPU 0 with
// GOMAXPROCS=1, while wrk runs on CPU 1. The parent (control plane,
// operator, the other scenarios) stays unpinned and idle during those runs.

// served is what the child prints, as one JSON line, once it listens.
type served struct {
	Verify, Null, Headers string
	// pid is the child's process id (not printed: the parent knows it).
	pid int
}

// cpuTime is the CPU time all threads of process pid have run, from the
// scheduler's own accounting (/proc/<pid>/task/*/schedstat, nanoseconds):
// the server's CPU per request, which waiting for a CPU that other
// processes hold does not change, unlike req/s.
func cpuTime(pid int) (time.Duration, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		return 0, fmt.Errorf("no schedstat for process %d: %v", pid, err)
	}
	var sum time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // a thread that ended
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			continue
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %q: %w", t, b, err)
		}
		sum += time.Duration(ns)
	}
	return sum, nil
}

// serveChild starts the child and waits for its addresses. Lines written
// to its stdin are commands ("profile <file>", "stop"); closing it ends
// the child.
func serveChild(kubeconfig string) (served, func(string) error, func(), error) {
	self, err := os.Executable()
	if err != nil {
		return served{}, nil, nil, err
	}
	args := []string{self, "-serve", "-serve-kubeconfig", kubeconfig}
	if pinned() {
		args = append([]string{"taskset", "-c", "0"}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return served{}, nil, nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return served{}, nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return served{}, nil, nil, err
	}
	stop := func() { _ = in.Close(); _ = cmd.Wait() }
	lines := bufio.NewScanner(out)
	var s served
	if !lines.Scan() {
		stop()
		return served{}, nil, nil, fmt.Errorf("bench -serve exited before listening")
	}
	if err := json.Unmarshal(lines.Bytes(), &s); err != nil {
		stop()
		return served{}, nil, nil, fmt.Errorf("bench -serve: %q: %w", lines.Text(), err)
	}
	s.pid = cmd.Process.Pid // taskset execs the command: same process
	command := func(c string) error {
		if _, err := fmt.Fprintln(in, c); err != nil {
			return err
		}
		if !lines.Scan() {
			return fmt.Errorf("bench -serve: no answer to %q", c)
		}
		if t := lines.Text(); t != "ok" {
			return fmt.Errorf("bench -serve: %s", t)
		}
		return nil
	}
	return s, command, stop, nil
}

// serve is the child: it listens, prints its addresses and follows the
// commands on stdin until stdin closes.
func serve(kubeconfig string) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	vln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	mgr, err := operator.NewManager(cfg, operator.Options{Namespace: "latchkey-system", MetricsAddr: "0", VerifierOnly: true,
		VerifierListener: vln, VerifierGRPCAddr: "0"})
	if err != nil {
		return err
	}
	go func() {
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "bench -serve: manager:", err)
			os.Exit(1)
		}
	}()
	// The floors: a bare null handler, and one that answers with the six
	// identity headers a successful verification returns (static values of
	// the same size), the HTTP floor of the forward-auth contract itself.
	bare := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	withHeaders := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h[verifier.HeaderClientID] = []string{"id_P3OsKW8jmcsM174m"}
		h[verifier.HeaderTenant] = []string{"2"}
		h[verifier.HeaderPermissions] = []string{"blogs.read"}
		h[verifier.HeaderTokenID] = []string{"327jlwr6arrfl3pj"}
		h[verifier.HeaderAllowImpersonate] = []string{"false"}
		h[verifier.HeaderAllowLogin] = []string{"false"}
		w.WriteHeader(http.StatusOK)
	})
	var s served
	for _, x := range []struct {
		h   http.Handler
		url *string
	}{{bare, &s.Null}, {withHeaders, &s.Headers}} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		srv := verifier.NewHTTPServer(x.h)
		go func() { _ = srv.Serve(ln) }()
		defer func() { _ = srv.Close() }()
		*x.url = "http://" + ln.Addr().String() + "/v1/verify"
	}
	s.Verify = "http://" + vln.Addr().String() + "/v1/verify"
	b, _ := json.Marshal(s)
	fmt.Println(string(b))

	var prof *os.File
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		switch {
		case len(f) == 2 && f[0] == "profile" && prof == nil:
			if prof, err = os.Create(f[1]); err == nil {
				err = pprof.StartCPUProfile(prof)
			}
		case len(f) == 1 && f[0] == "stop" && prof != nil:
			pprof.StopCPUProfile()
			err, prof = prof.Close(), nil
		default:
			err = fmt.Errorf("unknown command %q", in.Text())
		}
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println("ok")
	}
	if prof != nil {
		pprof.StopCPUProfile()
		_ = prof.Close()
	}
	cancel()
	// Let the manager stop its servers before exiting.
	time.Sleep(100 * time.Millisecond)
	return nil
}
