package cli

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"

	"github.com/latchkey-dev/latchkey/internal/console"
)

func newConsoleCommand(o *options) *cobra.Command {
	var address string
	var noBrowser bool
	var catalogRef string
	cmd := &cobra.Command{
		Use:   "console [--address 127.0.0.1:PORT] [--no-browser]",
		Short: "Serve a web console on 127.0.0.1 to see, issue and revoke credentials",
		Long: `Serve the Latchkey console, a web page on the loopback interface that acts with your
kubeconfig, like kubectl proxy: Kubernetes RBAC decides what you see and may do, and
nothing of it runs in the cluster. The command prints a one-time URL (it signs the
browser in) and opens it when a browser is available; it serves until interrupted.

See docs/console.md for the security model.`,
		Example: fmt.Sprintf(`  %[1]s console
  %[1]s console -n team-a --address 127.0.0.1:8765 --no-browser`, o.program),
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return fmt.Errorf("--address %q is not HOST:PORT, for example 127.0.0.1:8765 (port 0: any free port)", address)
			}
			if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
				return fmt.Errorf("--address %q is not a loopback address: the console acts with your credentials and serves only this machine; use 127.0.0.1:PORT", address)
			}
			var catalogKey types.NamespacedName
			if catalogRef != "" {
				ns, name, ok := strings.Cut(catalogRef, "/")
				if !ok || ns == "" || name == "" {
					return fmt.Errorf("--permission-catalog-configmap %q is not NAMESPACE/NAME, for example latchkey-system/latchkey-permission-catalog", catalogRef)
				}
				catalogKey = types.NamespacedName{Namespace: ns, Name: name}
			}
			s, err := o.connect()
			if err != nil {
				return err
			}
			cfg, err := o.config.ToRESTConfig()
			if err != nil {
				return err
			}
			srv, err := console.New(console.Options{Config: cfg, Namespace: s.namespace, Log: o.streams.ErrOut, Timeout: o.timeout, CatalogConfigMap: catalogKey})
			if err != nil {
				return err
			}
			ln, err := srv.Listen(address)
			if err != nil {
				return fmt.Errorf("cannot listen on %s: %w; choose another --address", address, err)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			done := make(chan error, 1)
			go func() { done <- srv.Serve(ctx, ln) }()
			_, _ = fmt.Fprintf(o.streams.Out, "Latchkey console, acting as your kubeconfig's user (cluster %s), at:\n\n  %s\n\nThe link works once and signs one browser in. Press Ctrl+C to stop.\n", s.host, srv.URL())
			if !noBrowser {
				openBrowser(ctx, srv.URL())
			}
			return <-done
		},
	}
	cmd.Flags().StringVar(&address, "address", "127.0.0.1:0", "Loopback address to serve on (port 0: a free port)")
	cmd.Flags().BoolVar(&noBrowser, "no-browser", false, "Do not open a browser; only print the URL")
	cmd.Flags().StringVar(&catalogRef, "permission-catalog-configmap", "", "NAMESPACE/NAME of the operator's permission catalog ConfigMap: the New API client form then offers its scopes and permissions as checkboxes (read with your rights)")
	return cmd
}

// openBrowser opens url with xdg-open (or open on macOS) when present.
func openBrowser(ctx context.Context, url string) {
	for _, opener := range []string{"xdg-open", "open"} {
		if p, err := exec.LookPath(opener); err == nil {
			_ = exec.CommandContext(context.WithoutCancel(ctx), p, url).Start() // #nosec G204 -- our own URL
			return
		}
	}
}
