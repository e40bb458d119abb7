package main

import (
	"strings"
	"testing"
	"time"
)

// Reports as wrk 4.1 (Debian) prints them with --latency.
const (
	wrkOK = `Running 3s test @ http://127.0.0.1:40123/v1/verify
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   339.52us  120.17us   5.07ms   90.70%
    Req/Sec    47.51k     2.07k   50.48k    76.00%
  Latency Distribution
     50%  322.00us
     75%  360.00us
     90%  425.00us
     99%  728.00us
  142450 requests in 3.00s, 17.14MB read
Requests/sec:  47483.31
Transfer/sec:      5.71MB
`
	wrkRejected = `Running 1s test @ http://127.0.0.1:18099/nonexist
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.42ms    2.21ms  18.20ms   83.25%
    Req/Sec     1.23k   240.15     1.69k    70.00%
  Latency Distribution
     50%    2.65ms
     75%    4.18ms
     90%    6.31ms
     99%    1.46s
  1231 requests in 1.00s, 625.30KB read
  Socket errors: connect 0, read 2, write 1, timeout 4
  Non-2xx or 3xx responses: 1231
Requests/sec:   1228.41
Transfer/sec:    623.98KB
`
)

func TestParseWrk(t *testing.T) {
	for _, tc := range []struct {
		name, out string
		want      wrkResult
		wantErr   string
	}{
		{name: "ok", out: wrkOK, want: wrkResult{requests: 142450, elapsed: 3 * time.Second, rps: 47483.31,
			p50: 322 * time.Microsecond, p99: 728 * time.Microsecond}},
		{name: "non-2xx and socket errors, seconds", out: wrkRejected, want: wrkResult{requests: 1231, elapsed: time.Second, rps: 1228.41,
			p50: 2650 * time.Microsecond, p99: 1460 * time.Millisecond, non2xx: 1231, socketErrors: 7}},
		{name: "connection refused: nothing on stdout", out: "unable to connect to 127.0.0.1:1 Connection refused\n", wantErr: "no Requests/sec"},
		{name: "without --latency", out: strings.Replace(wrkOK, "     99%  728.00us\n", "", 1), wantErr: "no latency distribution"},
		{name: "bad unit", out: strings.Replace(wrkOK, "728.00us", "728.00xs", 1), wantErr: `99% latency "728.00xs"`},
		{name: "no request count", out: strings.Replace(wrkOK, "  142450 requests in 3.00s, 17.14MB read\n", "", 1), wantErr: "no request count"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseWrk(tc.out)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestWrkCommand(t *testing.T) {
	cmd := wrkCommand("http://127.0.0.1:1/v1/verify", "Bearer t", 16, 2500*time.Millisecond)
	got := strings.Join(cmd.Args, " ")
	want := "wrk -t1 -c16 -d3s --latency -H Authorization: Bearer t http://127.0.0.1:1/v1/verify"
	if pinned() {
		want = "taskset -c 1 " + want
	}
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestRatios(t *testing.T) {
	ms := time.Millisecond
	verify := []wrkResult{{rps: 45000, p99: 3 * ms}, {rps: 30000, p99: 9 * ms}, {rps: 46000, p99: 2 * ms}}
	null := []wrkResult{{rps: 50000, p99: 2 * ms}, {rps: 50000, p99: 2 * ms}, {rps: 50000, p99: 2 * ms}}
	headers := []wrkResult{{rps: 48000, p99: 2 * ms}, {rps: 40000, p99: 2 * ms}, {rps: 50000, p99: 2 * ms}}
	gs := ratios(verify, null, headers)
	for _, tc := range []struct {
		i      int
		median float64
		ok     bool
	}{
		{0, 46000.0 / 50000, true}, // the median of 0.9375, 0.75, 0.92
		{1, 0.9, true},             // 0.9, 0.6, 0.92
		{2, 1.5, true},             // 1.5, 4.5, 1.0: ≤ 1.5 holds at 1.5
		{3, 1.5, true},
	} {
		m, ok := gs[tc.i].verdict()
		if m != tc.median || ok != tc.ok {
			t.Errorf("%s: %.4f %v, want %.4f %v", gs[tc.i].name, m, ok, tc.median, tc.ok)
		}
	}
	verify[0].rps, verify[2].rps = 40000, 40000 // two rounds below 0.9
	if m, ok := ratios(verify, null, headers)[0].verdict(); ok {
		t.Errorf("verify/headers median %.3f passed, want a failure below 0.9", m)
	}
}
