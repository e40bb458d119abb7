package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
)

// newActivateCommand builds activate (on=true) or deactivate (on=false).
func newActivateCommand(o *options, on bool) *cobra.Command {
	var id string
	verb, short := "activate", "Accept the credentials of an API client again"
	long := `Set spec.active to true: the client's secret and every token issued to it work again,
unchanged.`
	if !on {
		verb, short = "deactivate", "Reject every credential of an API client, without deleting anything"
		long = `Set spec.active to false: the client's secret and every token issued to it are rejected
until the client is activated again. Nothing is deleted or reissued.`
	}
	cmd := &cobra.Command{
		Use:     verb + " --id ID",
		Short:   short,
		Long:    long,
		Example: fmt.Sprintf("  %s %s --id sysadmin-org", o.program, verb),
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireID(id); err != nil {
				return err
			}
			s, err := o.connect()
			if err != nil {
				return err
			}
			return s.setActive(cmd.Context(), id, on)
		},
	}
	cmd.Flags().StringVar(&id, "id", "", "Client ID. Required")
	return cmd
}

func (s *session) setActive(ctx context.Context, id string, on bool) error {
	c, err := s.findClient(ctx, id)
	if err != nil {
		return err
	}
	if c.IsActive() != on {
		patch := client.MergeFrom(c.DeepCopy())
		c.Spec.Active = ptr.To(on)
		if err := s.c.Patch(ctx, c, patch); err != nil {
			return explain(err, s.host)
		}
	}
	want := metav1.ConditionFalse
	if on {
		want = metav1.ConditionTrue
	}
	key := types.NamespacedName{Namespace: c.Namespace, Name: c.Name}
	c, err = s.waitClient(ctx, key, map[bool]string{true: "active", false: "inactive"}[on], func(c *latchkeyv1alpha1.ApiClient) bool {
		a := meta.FindStatusCondition(c.Status.Conditions, latchkeyv1alpha1.ConditionActive)
		return a != nil && a.ObservedGeneration == c.Generation && a.Status == want
	})
	if err != nil {
		return err
	}
	rec := clientRecord(c, nil)
	rec.Active = ptr.To(on)
	return printClients(s.streams.Out, s.format, rec)
}
