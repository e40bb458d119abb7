package suite

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/latchkey-dev/latchkey/internal/cli"
)

// The console command: a non-loopback --address is refused; otherwise it
// prints a one-time URL on 127.0.0.1 that signs a browser in, serves until
// interrupted, and returns 0.
func TestConsoleCommand(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, env.KubeConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	var errOut strings.Builder
	code := cli.Main(context.Background(), "kubectl latchkey", []string{"console", "--address", "0.0.0.0:0", "--no-browser", "--kubeconfig", kubeconfig},
		genericiooptions.IOStreams{In: strings.NewReader(""), Out: io.Discard, ErrOut: &errOut})
	if code != 1 || !strings.Contains(errOut.String(), "not a loopback address") {
		t.Errorf("--address 0.0.0.0:0: exit %d, %q", code, errOut.String())
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	var logs strings.Builder
	go func() {
		done <- cli.Main(ctx, "kubectl latchkey", []string{"console", "--no-browser", "--kubeconfig", kubeconfig, "-n", "default"},
			genericiooptions.IOStreams{In: strings.NewReader(""), Out: pw, ErrOut: &logs})
		_ = pw.Close()
	}()
	urlPattern := regexp.MustCompile(`http://127\.0\.0\.1:\d+/login\?token=[A-Za-z0-9_-]{43}`)
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if u := urlPattern.FindString(sc.Text()); u != "" {
				found <- u
			}
		}
	}()
	var u string
	select {
	case u = <-found:
	case <-time.After(30 * time.Second):
		t.Fatal("the command printed no URL")
	}
	hc := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Set-Cookie"), "SameSite=Strict") {
		t.Errorf("the printed URL: %d, cookie %q", resp.StatusCode, resp.Header.Get("Set-Cookie"))
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit code %d after interruption", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the command did not stop when interrupted")
	}
	if strings.Contains(logs.String(), "token=") {
		t.Error("the console logged the login token")
	}
}
