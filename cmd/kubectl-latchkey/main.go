// Command kubectl-latchkey manages Latchkey API clients and their credentials
// from a shell. Installed on PATH as kubectl-latchkey it is the kubectl plugin
// "kubectl latchkey"; installed (or linked) as api-client it is the
// equivalent of Decidim's api-client. See docs/cli.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/go-logr/logr"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/latchkey-dev/latchkey/internal/cli"
)

func main() {
	// controller-runtime's client logs nothing a user needs; without a
	// logger it would complain on stderr that none was set.
	ctrllog.SetLogger(logr.Discard())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, cli.ProgramName(os.Args[0]), os.Args[1:], genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr})
	stop()
	os.Exit(code)
}
