package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/latchkey-dev/latchkey/internal/logging"
	"github.com/latchkey-dev/latchkey/internal/version"
)

// Output formats of --format.
const (
	FormatJSON = "json"
	FormatText = "text"
)

// DefaultTimeout bounds every wait for the operator (--timeout).
const DefaultTimeout = 30 * time.Second

// ProgramName is how the command names itself in help and messages, from the
// name it was invoked as: "kubectl latchkey" for the kubectl-latchkey plugin
// binary, else the binary's name ("api-client").
func ProgramName(arg0 string) string {
	base := strings.TrimSuffix(filepath.Base(arg0), ".exe")
	if rest, ok := strings.CutPrefix(base, "kubectl-"); ok && rest != "" {
		// kubectl maps "-" in a plugin's command to "_" in its file name
		// only for dashes within a word; "kubectl-latchkey" is "latchkey".
		return "kubectl " + strings.ReplaceAll(rest, "_", "-")
	}
	if base == "" || base == "." {
		return "kubectl latchkey"
	}
	return base
}

// Main runs the command with args (without the program name) and returns the
// process exit code: 0 on success, 1 after printing one "error: ..." line on
// streams.ErrOut.
func Main(ctx context.Context, program string, args []string, streams genericiooptions.IOStreams) int {
	cmd := NewCommand(program, streams)
	cmd.SetArgs(args)
	if err := cmd.ExecuteContext(ctx); err != nil {
		_, _ = fmt.Fprintf(streams.ErrOut, "error: %s\n", oneLine(err.Error()))
		return 1
	}
	return 0
}

// oneLine folds a multi-line message (some API errors have several) into one
// line, so every failure is exactly one line on stderr.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	s = strings.ReplaceAll(s, "\r", "")
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}

// options are the flags every verb shares.
type options struct {
	program string
	streams genericiooptions.IOStreams
	config  *genericclioptions.ConfigFlags
	format  string
	timeout time.Duration
	// verbosity is -v: client-go's request logging on stderr, as kubectl's.
	verbosity int
}

// NewCommand builds the root command. program is its display name (see
// ProgramName).
func NewCommand(program string, streams genericiooptions.IOStreams) *cobra.Command {
	o := &options{program: program, streams: streams, config: genericclioptions.NewConfigFlags(false)}
	root := &cobra.Command{
		Use:   "latchkey",
		Short: "Manage Latchkey API clients and their credentials",
		Long: `Manage Latchkey API clients and their credentials, as Decidim's api-client does:
create a client with scopes, permissions and a tenant, read it back with its secret,
grant and revoke permissions; plus issue tokens, rotate, (de)activate and delete.

Every verb talks to the cluster of the current kubeconfig context (--kubeconfig,
--context, -n/--namespace as with kubectl) and waits for the Latchkey operator.`,
		Annotations:       map[string]string{cobra.CommandDisplayNameAnnotation: program},
		Version:           version.Get(), // --version: "<program> version <v>"
		SilenceUsage:      true,
		SilenceErrors:     true,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
		PersistentPreRunE: func(*cobra.Command, []string) error {
			if err := o.validateCommon(); err != nil {
				return err
			}
			o.setUpLogging()
			return nil
		},
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())
	})
	pf := root.PersistentFlags()
	o.config.AddFlags(pf)
	pf.StringVar(&o.format, "format", FormatJSON, "Output format: json or text")
	pf.DurationVar(&o.timeout, "timeout", DefaultTimeout, "How long to wait for the operator before giving up")
	pf.IntVarP(&o.verbosity, "v", "v", 0, fmt.Sprintf("Log the Kubernetes API requests on stderr, as kubectl's -v: 6 URLs and status, 7 also headers (credentials masked); capped at %d, request and response bodies are never logged", logging.MaxVerbosity))
	// Decidim spells --permission also --perm.
	root.SetGlobalNormalizationFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		if name == "perm" {
			name = "permission"
		}
		return pflag.NormalizedName(name)
	})
	root.AddCommand(
		newCreateCommand(o),
		newGetCommand(o),
		newGrantCommand(o, true),
		newGrantCommand(o, false),
		newIssueCommand(o),
		newRotateCommand(o),
		newActivateCommand(o, true),
		newActivateCommand(o, false),
		newDeleteCommand(o),
		newWhoamiCommand(o),
		newRevokeTokenCommand(o),
		newConsoleCommand(o),
	)
	return root
}

func (o *options) validateCommon() error {
	if o.timeout <= 0 {
		return fmt.Errorf("--timeout must be positive, for example 30s or 2m")
	}
	if o.verbosity < 0 {
		return fmt.Errorf("-v must be 0 or more, got %d", o.verbosity)
	}
	return validateFormat(o.format)
}

// setUpLogging applies -v: client-go (through klog) logs its requests on
// stderr, through the same cap as the operator (internal/logging), so the
// bodies, which hold the secrets this command reads and writes, are never
// printed. Without -v nothing changes: klog stays at its default, silent
// verbosity.
func (o *options) setUpLogging() {
	if o.verbosity > 0 {
		logging.NewCLI(o.verbosity, o.streams.ErrOut)
	}
}

// noArgs rejects positional arguments with a message that points at the
// flags: Decidim's verbs take none.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("%s takes no arguments, got %q: use flags (see '%s --help')", cmd.CommandPath(), strings.Join(args, " "), cmd.CommandPath())
	}
	return nil
}
