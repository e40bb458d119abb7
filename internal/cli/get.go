package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
)

func newGetCommand(o *options) *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "get [--id ID]",
		Short: "Print one API client, or all of them, with their secrets",
		Long: `Print the API client with the given id, or every API client of the namespace (one JSON
object per line). The secret is read from the client's Secret; when you may not read it,
the record is printed without it and a warning says so.`,
		Example: fmt.Sprintf(`  %[1]s get
  %[1]s get --id sysadmin-org
  %[1]s get --id sysadmin-org --format text`, o.program),
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := o.connect()
			if err != nil {
				return err
			}
			return s.get(cmd.Context(), id)
		},
	}
	cmd.Flags().StringVar(&id, "id", "", "Client ID (default: every client of the namespace)")
	return cmd
}

func (s *session) get(ctx context.Context, id string) error {
	var clients []latchkeyv1alpha1.ApiClient
	if id != "" {
		c, err := s.findClient(ctx, id)
		if err != nil {
			return err
		}
		clients = append(clients, *c)
	} else {
		var err error
		if clients, err = s.listClients(ctx); err != nil {
			return err
		}
	}
	recs := make([]ClientRecord, 0, len(clients))
	for i := range clients {
		c := &clients[i]
		sec, err := s.consumerSecret(ctx, c.Status.SecretName, c.Status.TokenID)
		var hidden errSecretHidden
		switch {
		case errors.As(err, &hidden):
			label := clientRecord(c, nil).ID
			if label == "" {
				label = c.Name
			}
			s.warn("client %s: %v", label, err)
		case err != nil:
			return err
		}
		recs = append(recs, clientRecord(c, sec))
	}
	return printClients(s.streams.Out, s.format, recs...)
}
