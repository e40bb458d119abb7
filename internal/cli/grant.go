package cli

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
)

// newGrantCommand builds grant (add=true) or revoke (add=false).
func newGrantCommand(o *options, add bool) *cobra.Command {
	var (
		id    string
		perms []string
	)
	verb, short, example := "grant", "Grant permissions to an API client", "blogs.read"
	if !add {
		verb, short = "revoke", "Revoke permissions from an API client"
	}
	cmd := &cobra.Command{
		Use:   verb + " --id ID --permission PERMISSION...",
		Short: short,
		Long: short + `. Each permission must be valid for the client's scopes, which were
fixed at creation. The change takes effect at once for the client and for every
token issued to it; the updated record is printed (without its secret: use get).`,
		Example: fmt.Sprintf("  %s %s --id sysadmin-org --permission %s", o.program, verb, example),
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireID(id); err != nil {
				return err
			}
			if err := requirePermissions(perms, verb); err != nil {
				return err
			}
			s, err := o.connect()
			if err != nil {
				return err
			}
			return s.editPermissions(cmd.Context(), id, dedupe(perms), add)
		},
	}
	cmd.Flags().StringVar(&id, "id", "", "Client ID. Required")
	cmd.Flags().StringSliceVar(&perms, "permission", nil, "Permission (repeat, or separate with commas); also --perm. Required")
	return cmd
}

// editPermissions adds or removes permissions with an optimistic-lock patch:
// a concurrent writer (another admin, a GitOps tool) makes the patch fail
// with a conflict, and the edit is redone on the fresh object instead of
// overwriting its change.
func (s *session) editPermissions(ctx context.Context, id string, perms []string, add bool) error {
	found, err := s.findClient(ctx, id)
	if err != nil {
		return err
	}
	if err := validatePermissions(perms, found.Spec.Scopes); err != nil {
		return err
	}
	key := types.NamespacedName{Namespace: found.Namespace, Name: found.Name}
	c := found
	err = retry.RetryOnConflict(conflictBackoff, func() error {
		if c == nil {
			c = &latchkeyv1alpha1.ApiClient{}
			if err := s.c.Get(ctx, key, c); err != nil {
				return err
			}
		}
		want := editedPermissions(c.Spec.Permissions, perms, add)
		if slices.Equal(want, c.Spec.Permissions) {
			return nil
		}
		patch := client.MergeFromWithOptions(c.DeepCopy(), client.MergeFromWithOptimisticLock{})
		c.Spec.Permissions = want
		err := s.c.Patch(ctx, c, patch)
		if err != nil {
			c = nil
		}
		return err
	})
	if err != nil {
		return explain(err, s.host)
	}
	return printClients(s.streams.Out, s.format, clientRecord(c, nil))
}

// conflictBackoff spaces out retries after a conflict. The operator's own
// status writes change the resourceVersion too, so a busy client may take
// several attempts; jitter keeps parallel editors from colliding again.
var conflictBackoff = wait.Backoff{Steps: 15, Duration: 10 * time.Millisecond, Factor: 1.5, Jitter: 1.0, Cap: time.Second}

// editedPermissions is have with perms appended (add) or removed, in order.
func editedPermissions(have, perms []string, add bool) []string {
	out := slices.Clone(have)
	if add {
		for _, p := range perms {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
		return out
	}
	return slices.DeleteFunc(out, func(p string) bool { return slices.Contains(perms, p) })
}
