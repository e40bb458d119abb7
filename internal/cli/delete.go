package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
)

// DeleteRecord is what delete prints.
type DeleteRecord struct {
	// ID is the deleted client's id (delete --id) or the grant's token id
	// (delete --grant).
	ID      string `json:"id"`
	Deleted bool   `json:"deleted"`
	// Resource is kind/name of the deleted object.
	Resource string `json:"resource"`
}

func newDeleteCommand(o *options) *cobra.Command {
	var id, grant string
	cmd := &cobra.Command{
		Use:   "delete (--id ID | --grant NAME)",
		Short: "Delete an API client and revoke its secret and all its tokens (or delete one token)",
		Long: `Delete an API client (--id): its secret and every token issued to it stop working at once,
even before they expire. The command returns when the operator has revoked them.
With --grant, delete one CredentialGrant: only that token is revoked.

A client with spec.deletionPolicy RequireInactive must be deactivated first.`,
		Example: fmt.Sprintf(`  %[1]s delete --id sysadmin-org
  %[1]s delete --grant sysadmin-org-x7k2p`, o.program),
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (id == "") == (grant == "") {
				return fmt.Errorf("give exactly one of --id (delete a client and revoke everything) or --grant (delete one token)")
			}
			s, err := o.connect()
			if err != nil {
				return err
			}
			if id != "" {
				return s.deleteClient(cmd.Context(), id)
			}
			return s.deleteGrant(cmd.Context(), grant)
		},
	}
	cmd.Flags().StringVar(&id, "id", "", "Client ID of the client to delete")
	cmd.Flags().StringVar(&grant, "grant", "", "Name of the CredentialGrant to delete")
	return cmd
}

func (s *session) deleteClient(ctx context.Context, id string) error {
	c, err := s.findClient(ctx, id)
	if err != nil {
		return err
	}
	rec := DeleteRecord{ID: clientRecord(c, nil).ID, Deleted: true, Resource: "apiclient/" + c.Name}
	if err := s.deleteAndWait(ctx, c, latchkeyv1alpha1.ApiClientKind); err != nil {
		return err
	}
	return s.printDeleted(rec, "its secret and every token issued to it are revoked")
}

func (s *session) deleteGrant(ctx context.Context, name string) error {
	g := &latchkeyv1alpha1.CredentialGrant{}
	if err := s.c.Get(ctx, types.NamespacedName{Namespace: s.namespace, Name: name}, g); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("no CredentialGrant %q in namespace %q", name, s.namespace)
		}
		return explain(err, s.host)
	}
	rec := DeleteRecord{ID: g.Status.TokenID, Deleted: true, Resource: "credentialgrant/" + g.Name}
	if err := s.deleteAndWait(ctx, g, latchkeyv1alpha1.CredentialGrantKind); err != nil {
		return err
	}
	return s.printDeleted(rec, "its token is revoked")
}

// deleteAndWait deletes obj and waits until it is gone: the operator's
// finalizer deletes the backing tokens first, so when it returns the
// credentials are revoked.
func (s *session) deleteAndWait(ctx context.Context, obj client.Object, kind string) error {
	if err := s.c.Delete(ctx, obj, client.Preconditions{UID: ptrUID(obj)}); client.IgnoreNotFound(err) != nil {
		return explain(err, s.host)
	}
	key := client.ObjectKeyFromObject(obj)
	fresh := obj.DeepCopyObject().(client.Object)
	err := s.poll(ctx, func(ctx context.Context) (bool, error) {
		err := s.c.Get(ctx, key, fresh)
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, explain(err, s.host)
	})
	if errors.Is(err, errTimedOut) {
		return fmt.Errorf("%s %s/%s is being deleted, but the operator has not revoked its credentials after %s (finalizers %v): is the Latchkey operator running?", kind, key.Namespace, key.Name, s.timeout, fresh.GetFinalizers())
	}
	return err
}

func ptrUID(obj client.Object) *types.UID {
	u := obj.GetUID()
	return &u
}

func (s *session) printDeleted(rec DeleteRecord, what string) error {
	if s.format == FormatJSON {
		return printJSON(s.streams.Out, rec)
	}
	_, err := fmt.Fprintf(s.streams.Out, "Deleted %s (%s): %s.\n", rec.Resource, rec.ID, what)
	return err
}
