package main

import (
	"bufio"
	"cmp"
	"fmt"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// wrkResult is what one wrk run reports.
type wrkResult struct {
	requests int
	// non2xx counts answers outside 2xx/3xx ("Non-2xx or 3xx responses").
	non2xx int
	// socketErrors sums wrk's connect, read, write and timeout errors.
	socketErrors int
	elapsed      time.Duration
	rps          float64
	p50, p99     time.Duration
	// serverCPU is the CPU time the server process used during the run
	// (set by the caller, not parsed).
	serverCPU time.Duration
}

// cpuPerRequest is the server's CPU time per answered request.
func (r wrkResult) cpuPerRequest() time.Duration {
	if r.requests == 0 {
		return 0
	}
	return r.serverCPU / time.Duration(r.requests)
}

// wrkCommand is the wrk invocation for one scenario: one thread, conns
// keep-alive connections, pinned to CPU 1 when the machine has two CPUs
// or more (the server under test runs on CPU 0, see serve.go).
func wrkCommand(url, authorization string, conns int, d time.Duration) *exec.Cmd {
	args := []string{"wrk", "-t1", fmt.Sprintf("-c%d", conns), fmt.Sprintf("-d%ds", max(1, int(d.Round(time.Second)/time.Second))),
		"--latency", "-H", "Authorization: " + authorization, url}
	if pinned() {
		args = append([]string{"taskset", "-c", "1"}, args...)
	}
	return exec.Command(args[0], args[1:]...)
}

// pinned reports whether the server and wrk run on CPUs of their own.
func pinned() bool { return runtime.NumCPU() >= 2 }

// runWrk runs wrk against url and parses its report.
func runWrk(url, authorization string, conns int, d time.Duration) (wrkResult, error) {
	out, err := wrkCommand(url, authorization, conns, d).CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %w: %s", err, out)
	}
	return parseWrk(string(out))
}

// parseWrk reads wrk 4's report as printed with --latency: the request
// count and duration, the throughput, the 50th and 99th percentiles of the
// latency distribution, non-2xx answers and socket errors. A report
// without the throughput or the distribution is an error.
func parseWrk(out string) (wrkResult, error) {
	var (
		r                                wrkResult
		haveRPS, have50, have99, haveReq bool
	)
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "Requests/sec:":
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return r, fmt.Errorf("wrk report: Requests/sec %q: %w", f[1], err)
			}
			r.rps, haveRPS = v, true
		case len(f) == 2 && (f[0] == "50%" || f[0] == "99%"):
			d, err := time.ParseDuration(f[1])
			if err != nil {
				return r, fmt.Errorf("wrk report: %s latency %q: %w", f[0], f[1], err)
			}
			if f[0] == "50%" {
				r.p50, have50 = d, true
			} else {
				r.p99, have99 = d, true
			}
		case len(f) >= 5 && f[1] == "requests" && f[2] == "in":
			n, err := strconv.Atoi(f[0])
			if err != nil {
				return r, fmt.Errorf("wrk report: request count %q: %w", f[0], err)
			}
			d, err := time.ParseDuration(strings.TrimSuffix(f[3], ","))
			if err != nil {
				return r, fmt.Errorf("wrk report: duration %q: %w", f[3], err)
			}
			r.requests, r.elapsed, haveReq = n, d, true
		case len(f) == 5 && strings.Join(f[:4], " ") == "Non-2xx or 3xx responses:":
			n, err := strconv.Atoi(f[4])
			if err != nil {
				return r, fmt.Errorf("wrk report: non-2xx count %q: %w", f[4], err)
			}
			r.non2xx = n
		case len(f) >= 3 && f[0] == "Socket" && f[1] == "errors:":
			// Socket errors: connect 0, read 0, write 0, timeout 0
			for i := 2; i+1 < len(f); i += 2 {
				n, err := strconv.Atoi(strings.TrimSuffix(f[i+1], ","))
				if err != nil {
					return r, fmt.Errorf("wrk report: socket errors %q: %w", sc.Text(), err)
				}
				r.socketErrors += n
			}
		}
	}
	switch {
	case !haveRPS:
		return r, fmt.Errorf("wrk report has no Requests/sec line")
	case !have50 || !have99:
		return r, fmt.Errorf("wrk report has no latency distribution (run wrk with --latency)")
	case !haveReq:
		return r, fmt.Errorf("wrk report has no request count")
	}
	return r, nil
}

// wrkScenario is one HTTP scenario driven by wrk: every answer must have
// status want.
type wrkScenario struct {
	name, short, url, auth string
	want                   int
}

// summary folds the rounds of a scenario into one row: requests and time
// summed, p50 and p99 the median of the rounds' own, errors the answers
// with another status than want plus wrk's socket errors.
func (sc wrkScenario) summary(rounds []wrkResult) result {
	r := result{name: sc.name}
	var p50s, p99s []time.Duration
	for _, w := range rounds {
		r.requests += w.requests
		r.elapsed += w.elapsed
		wrong := w.non2xx
		if sc.want >= 300 {
			wrong = w.requests - w.non2xx
		}
		r.errors += wrong + w.socketErrors
		p50s, p99s = append(p50s, w.p50), append(p99s, w.p99)
	}
	if r.elapsed > 0 {
		r.rps = float64(r.requests) / r.elapsed.Seconds()
	}
	r.p50, r.p99 = median(p50s), median(p99s)
	return r
}

func median[T cmp.Ordered](v []T) T {
	var zero T
	if len(v) == 0 {
		return zero
	}
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}

// ratioGoal is one verify/null ratio with its goal: at least min (or, for
// latency, at most max).
type ratioGoal struct {
	name     string
	perRound []float64
	min, max float64
}

// verdict is the median of the rounds' ratios (each round's runs are
// adjacent in time, so background load hits both alike) and whether it
// meets the goal.
func (g ratioGoal) verdict() (float64, bool) {
	m := median(g.perRound)
	if g.max > 0 {
		return m, m <= g.max
	}
	return m, m >= g.min
}

// ratios computes the verify/null ratios of each round.
func ratios(verify, null, headers []wrkResult) []ratioGoal {
	gs := []ratioGoal{
		{name: "req/s verify / null + same headers", min: 0.9},
		{name: "req/s verify / bare null", min: 0.8},
		{name: "p99 verify / p99 null + same headers", max: 1.5},
		{name: "p99 verify / p99 bare null", max: 1.5},
		{name: "server CPU per request: null + same headers / verify (the req/s ratio without other processes' load)", min: 0.9},
		{name: "server CPU per request: bare null / verify", min: 0.8},
	}
	for i := range min(len(verify), len(null), len(headers)) {
		v, n, h := verify[i], null[i], headers[i]
		gs[0].perRound = append(gs[0].perRound, v.rps/h.rps)
		gs[1].perRound = append(gs[1].perRound, v.rps/n.rps)
		gs[2].perRound = append(gs[2].perRound, float64(v.p99)/float64(h.p99))
		gs[3].perRound = append(gs[3].perRound, float64(v.p99)/float64(n.p99))
		if v.cpuPerRequest() > 0 {
			gs[4].perRound = append(gs[4].perRound, float64(h.cpuPerRequest())/float64(v.cpuPerRequest()))
			gs[5].perRound = append(gs[5].perRound, float64(n.cpuPerRequest())/float64(v.cpuPerRequest()))
		}
	}
	return gs
}

// printRatios prints the ratio table of acceptance point 2 of issue 14.
func printRatios(verify, null, headers []wrkResult) {
	fmt.Println("| ratio (wrk, per round) | median | min–max | goal | pass |")
	fmt.Println("|---|---:|---:|---:|---|")
	for _, g := range ratios(verify, null, headers) {
		if len(g.perRound) == 0 {
			continue
		}
		m, ok := g.verdict()
		goal := fmt.Sprintf("≥ %.2f", g.min)
		if g.max > 0 {
			goal = fmt.Sprintf("≤ %.2f", g.max)
		}
		pass := "pass"
		if !ok {
			pass = "FAIL"
		}
		fmt.Printf("| %s | %.2f | %.2f–%.2f | %s | %s |\n", g.name, m, slices.Min(g.perRound), slices.Max(g.perRound), goal, pass)
	}
	fmt.Println()
}

// printRounds prints each round's req/s and p99, so that a disturbed round
// shows.
func printRounds(scs []wrkScenario, perRound [][]wrkResult) {
	fmt.Print("| round |")
	for _, sc := range scs {
		fmt.Printf(" %s req/s | p99 | CPU/req |", sc.name)
	}
	fmt.Print("\n|---:|")
	for range scs {
		fmt.Print("---:|---:|---:|")
	}
	fmt.Println()
	for i := range perRound[0] {
		fmt.Printf("| %d |", i+1)
		for j := range scs {
			w := perRound[j][i]
			fmt.Printf(" %.0f | %v | %v |", w.rps, w.p99, w.cpuPerRequest().Round(100*time.Nanosecond))
		}
		fmt.Println()
	}
	fmt.Println()
}
