package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
)

func newRotateCommand(o *options) *cobra.Command {
	var id, grant string
	cmd := &cobra.Command{
		Use:   "rotate (--id ID | --grant NAME)",
		Short: "Issue a new secret for an API client, or a new token for a grant, and print it",
		Long: `Rotate a credential: the operator issues a new client secret (--id) or a new token
(--grant, a CredentialGrant's name as printed by issue) and the new value is printed.
The previous one stops working at once, or after spec.rotation.gracePeriod when set.

A client whose secret was chosen with --secret takes its secret from that Secret:
change the Secret instead (a change there is a rotation too).`,
		Example: fmt.Sprintf(`  %[1]s rotate --id id_FEwz1JiXgP6K3zX7
  %[1]s rotate --grant sysadmin-org-x7k2p`, o.program),
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (id == "") == (grant == "") {
				return fmt.Errorf("give exactly one of --id (rotate a client's secret) or --grant (rotate a token)")
			}
			s, err := o.connect()
			if err != nil {
				return err
			}
			if id != "" {
				return s.rotateClient(cmd.Context(), id)
			}
			return s.rotateGrant(cmd.Context(), grant)
		},
	}
	cmd.Flags().StringVar(&id, "id", "", "Client ID whose secret to rotate")
	cmd.Flags().StringVar(&grant, "grant", "", "Name of the CredentialGrant whose token to rotate")
	return cmd
}

// rotateValue is a new value for the latchkey.dev/rotate annotation.
func rotateValue() string { return time.Now().UTC().Format(time.RFC3339Nano) }

// annotate sets the rotate annotation with a merge patch: it touches only
// that key, so it cannot undo a concurrent change to anything else.
func (s *session) annotate(ctx context.Context, obj client.Object) error {
	patch := client.MergeFrom(obj.DeepCopyObject().(client.Object))
	a := obj.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	a[latchkeyv1alpha1.AnnotationRotate] = rotateValue()
	obj.SetAnnotations(a)
	return explain(s.c.Patch(ctx, obj, patch), s.host)
}

func (s *session) rotateClient(ctx context.Context, id string) error {
	c, err := s.findClient(ctx, id)
	if err != nil {
		return err
	}
	if c.Spec.ClientSecretRef != nil {
		return fmt.Errorf("client %s takes its secret from Secret %s/%s (--secret): put the new secret there instead; the operator rotates to it", id, c.Namespace, c.Spec.ClientSecretRef.Name)
	}
	old := c.Status.TokenID
	if err := s.annotate(ctx, c); err != nil {
		return err
	}
	key := types.NamespacedName{Namespace: c.Namespace, Name: c.Name}
	c, err = s.waitClient(ctx, key, "rotated", func(c *latchkeyv1alpha1.ApiClient) bool {
		return clientIssued(c) && c.Status.TokenID != old
	})
	if err != nil {
		return err
	}
	sec, err := s.waitSecret(ctx, c.Status.SecretName, c.Status.TokenID)
	if err != nil {
		return fmt.Errorf("client %s is rotated, but its new secret cannot be shown: %w", id, err)
	}
	return printClients(s.streams.Out, s.format, clientRecord(c, sec))
}

func (s *session) rotateGrant(ctx context.Context, name string) error {
	key := types.NamespacedName{Namespace: s.namespace, Name: name}
	g := &latchkeyv1alpha1.CredentialGrant{}
	if err := s.c.Get(ctx, key, g); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("no CredentialGrant %q in namespace %q: list them with 'kubectl get credentialgrants -n %s'", name, s.namespace, s.namespace)
		}
		return explain(err, s.host)
	}
	old := g.Status.TokenID
	if err := s.annotate(ctx, g); err != nil {
		return err
	}
	g, err := s.waitGrant(ctx, key, "rotated", func(g *latchkeyv1alpha1.CredentialGrant) bool {
		return grantIssued(g) && g.Status.TokenID != old
	})
	if err != nil {
		return err
	}
	c := &latchkeyv1alpha1.ApiClient{}
	if err := s.c.Get(ctx, types.NamespacedName{Namespace: s.namespace, Name: g.Spec.ClientName}, c); err != nil {
		c = nil
	}
	return s.printGrant(ctx, g, c)
}
