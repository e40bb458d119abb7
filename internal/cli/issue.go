package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
)

type issueRequest struct {
	ID          string
	Name        string
	Permissions []string
	ExpiresIn   string
	ExpiresAt   string
	Description string
	Type        string
}

func newIssueCommand(o *options) *cobra.Command {
	var r issueRequest
	cmd := &cobra.Command{
		Use:   "issue --id ID [--permission P...] [--expires-in D | --expires-at T] [--description D] [--type bearer|key-auth|basic-auth]",
		Short: "Issue a token (a CredentialGrant) to an API client and print it once",
		Long: `Issue a credential to an API client: a CredentialGrant resource, whose token the operator
writes into a Secret of the same name. The token is printed once; its id is safe to log.

--permission narrows the token to a subset of the client's permissions (default: all of
them, now and as they change). --expires-in takes a duration (30m, 12h, 90d);
--expires-at an RFC 3339 time.`,
		Example: fmt.Sprintf(`  %[1]s issue --id sysadmin-org --expires-in 24h --description "nightly import"
  %[1]s issue --id sysadmin-org --permission system.organizations.read --type key-auth`, o.program),
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireID(r.ID); err != nil {
				return err
			}
			if err := validateType(r.Type); err != nil {
				return err
			}
			expiresAt, err := parseExpiry(r.ExpiresIn, r.ExpiresAt, time.Now())
			if err != nil {
				return err
			}
			for _, p := range r.Permissions {
				if !permissionPattern.MatchString(p) {
					return fmt.Errorf("invalid --permission %q: a permission is <scope>.<name>[.<name>...] in lower case, for example blogs.read", p)
				}
			}
			s, err := o.connect()
			if err != nil {
				return err
			}
			return s.issue(cmd.Context(), r, expiresAt)
		},
	}
	f := cmd.Flags()
	f.StringVar(&r.ID, "id", "", "Client ID. Required")
	f.StringVar(&r.Name, "name", "", "Name of the CredentialGrant (default: the client's resource name and a random suffix)")
	f.StringSliceVar(&r.Permissions, "permission", nil, "Permission of the token, a subset of the client's (default: all); also --perm")
	f.StringVar(&r.ExpiresIn, "expires-in", "", "Lifetime of the token (30m, 12h, 90d)")
	f.StringVar(&r.ExpiresAt, "expires-at", "", "Expiry of the token, RFC 3339")
	f.StringVar(&r.Description, "description", "", "What the token is for")
	f.StringVar(&r.Type, "type", string(latchkeyv1alpha1.CredentialTypeBearer), "Credential type: bearer, key-auth or basic-auth")
	return cmd
}

func (s *session) issue(ctx context.Context, r issueRequest, expiresAt *time.Time) error {
	c, err := s.findClient(ctx, r.ID)
	if err != nil {
		return err
	}
	perms := dedupe(r.Permissions)
	for _, p := range perms {
		if !slices.Contains(c.Spec.Permissions, p) {
			return fmt.Errorf("--permission %q is not granted to client %s (it has %s): a token holds only permissions of its client; grant it first with '%s grant --id %s --permission %s'",
				p, r.ID, list(c.Spec.Permissions), s.program, r.ID, p)
		}
	}
	g := &latchkeyv1alpha1.CredentialGrant{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.namespace, Name: r.Name},
		Spec: latchkeyv1alpha1.CredentialGrantSpec{
			ClientName:  c.Name,
			Permissions: perms,
			Description: r.Description,
			Type:        latchkeyv1alpha1.CredentialType(r.Type),
		},
	}
	if r.Name == "" {
		g.GenerateName = strings.TrimSuffix(truncate(c.Name, 200), "-") + "-"
	}
	if expiresAt != nil {
		g.Spec.ExpiresAt = &metav1.Time{Time: *expiresAt}
	}
	if err := s.c.Create(ctx, g); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("a CredentialGrant named %q already exists in namespace %q: choose another --name", r.Name, s.namespace)
		}
		return explain(err, s.host)
	}
	key := types.NamespacedName{Namespace: g.Namespace, Name: g.Name}
	g, err = s.waitGrant(ctx, key, "Ready", grantIssued)
	if err != nil {
		return err
	}
	return s.printGrant(ctx, g, c)
}

// printGrant prints an issued grant's token from its consumer Secret.
func (s *session) printGrant(ctx context.Context, g *latchkeyv1alpha1.CredentialGrant, c *latchkeyv1alpha1.ApiClient) error {
	sec, err := s.waitSecret(ctx, g.Status.SecretName, g.Status.TokenID)
	if err != nil {
		return fmt.Errorf("CredentialGrant %s/%s is issued, but its token cannot be shown: %w", g.Namespace, g.Name, err)
	}
	perms := g.Spec.Permissions
	if len(perms) == 0 && c != nil {
		perms = c.Spec.Permissions
	}
	return printToken(s.streams.Out, s.format, tokenRecord(g, perms, sec))
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
