package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
)

// generateNamePrefix names ApiClients whose --id is not a valid resource name.
const generateNamePrefix = "api-client-"

// minSecretLength is the fewest characters a chosen --secret may have: the
// admission webhook's MinChosenSecretLength (the API refuses shorter ones).
const minSecretLength = 16

// maxSecretFileSize bounds what --secret-file reads.
const maxSecretFileSize = 64 << 10

func newCreateCommand(o *options) *cobra.Command {
	var r createRequest
	var secretFile string
	cmd := &cobra.Command{
		Use:   "create --scope SCOPE [--permission PERMISSION...] [--tenant T | --organization-id T] [options]",
		Short: "Create an API client and print its id and secret",
		Long: `Create an API client (an ApiClient resource) with the given scopes and permissions,
wait until the operator has issued its secret, and print the record with the secret.

Scopes are fixed at creation; permissions can be changed later with grant and revoke.
A tenant (--tenant, or Decidim's --organization-id) is required unless the only scope
is "system". The resource is named after --id when it is a valid resource name,
else "api-client-" and a random suffix.`,
		Example: `  # A system-only client with a generated id and secret and no permissions
  %[1]s create --scope system
  # A client that reads the blogs of organization 2
  %[1]s create --scope blogs --permission blogs.read --organization-id 2
  # Fixed credentials
  %[1]s create --scope system --permission system.organizations.update --id sysadmin-org --secret my-insecure-password
  # A chosen secret kept out of the shell history (read from standard input, or a file)
  openssl rand -base64 32 | %[1]s create --scope system --id sysadmin-org --secret-file -`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r.SecretSet = cmd.Flags().Changed("secret")
			if cmd.Flags().Changed("secret-file") {
				if r.SecretSet {
					return fmt.Errorf("--secret and --secret-file both give the client secret: give only one")
				}
				v, err := readSecretFile(secretFile, o.streams.In)
				if err != nil {
					return err
				}
				r.Secret, r.SecretSet = v, true
			}
			if err := r.validate(); err != nil {
				return err
			}
			if r.SecretSet && utf8.RuneCountInString(r.Secret) < minSecretLength {
				return fmt.Errorf("the client secret (--secret or --secret-file) has fewer than %d characters, too short for a client secret: use a random one (for example: openssl rand -base64 32 | %s create ... --secret-file -), or leave out --secret to have one generated", minSecretLength, o.program)
			}
			s, err := o.connect()
			if err != nil {
				return err
			}
			return s.create(cmd.Context(), r)
		},
	}
	cmd.Example = fmt.Sprintf(cmd.Example, o.program)
	f := cmd.Flags()
	f.StringSliceVar(&r.Scopes, "scope", nil, "API scope (repeat, or separate with commas). Required")
	f.StringSliceVar(&r.Permissions, "permission", nil, "Permission, <scope>.<name> (repeat, or separate with commas); also --perm")
	f.StringVar(&r.Tenant, "tenant", "", "Tenant (organization) the client is bound to; required unless the only scope is system")
	f.StringVar(&r.OrganizationID, "organization-id", "", "Decidim's name for --tenant; the output then also has organization_id")
	f.StringVar(&r.Name, "name", "", `Client name (default "API Client ***<last 4 characters of the id>")`)
	f.StringVar(&r.ID, "id", "", "Client ID (default: generated id_...)")
	f.StringVar(&r.Secret, "secret", "", "Client secret, at least 16 characters (default: generated key_...); stored in a Secret referenced by spec.clientSecretRef. --secret-file keeps it out of the shell history")
	f.StringVar(&secretFile, "secret-file", "", "Read the client secret from this file ('-': standard input); trailing line breaks are dropped. Instead of --secret")
	f.BoolVar(&r.AllowImpersonate, "allow-impersonate", false, "If the client can impersonate a user")
	f.BoolVar(&r.AllowLogin, "allow-login", false, "If the client can insert user/password to login")
	return cmd
}

func (s *session) create(ctx context.Context, r createRequest) error {
	c := &latchkeyv1alpha1.ApiClient{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.namespace},
		Spec: latchkeyv1alpha1.ApiClientSpec{
			Scopes:           r.Scopes,
			Permissions:      r.Permissions,
			Tenant:           r.tenant(),
			ClientID:         r.ID,
			DisplayName:      r.Name,
			AllowImpersonate: r.AllowImpersonate,
			AllowLogin:       r.AllowLogin,
		},
	}
	if r.ID != "" && len(validation.IsDNS1123Subdomain(r.ID)) == 0 {
		c.Name = r.ID
	} else {
		c.GenerateName = generateNamePrefix
	}

	// The chosen secret's Secret is created first, so the operator finds it
	// at once instead of reporting SecretRefNotFound and backing off.
	var chosen *corev1.Secret
	if r.SecretSet {
		chosen = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: s.namespace,
				Labels:    map[string]string{latchkeyv1alpha1.LabelCreatedBy: fieldManager},
			},
			Type:       corev1.SecretTypeOpaque,
			StringData: map[string]string{latchkeyv1alpha1.ClientSecretKey: r.Secret},
		}
		if c.Name != "" {
			chosen.Name = c.Name + "-chosen-secret"
		} else {
			chosen.GenerateName = generateNamePrefix + "chosen-secret-"
		}
		if err := s.c.Create(ctx, chosen); err != nil {
			if apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("the Secret %s/%s for --secret already exists: delete it (kubectl delete secret %s -n %s) or choose another --id", s.namespace, chosen.Name, chosen.Name, s.namespace)
			}
			return explain(err, s.host)
		}
		c.Spec.ClientSecretRef = &latchkeyv1alpha1.SecretKeyReference{Name: chosen.Name, Key: latchkeyv1alpha1.ClientSecretKey}
	}

	if err := s.c.Create(ctx, c); err != nil {
		if chosen != nil {
			_ = s.c.Delete(context.WithoutCancel(ctx), chosen)
		}
		if apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("an ApiClient named %q already exists in namespace %q: choose another --id, or delete the old client with '%s delete --id %s'", c.Name, s.namespace, s.program, r.ID)
		}
		return explain(err, s.host)
	}
	if chosen != nil {
		// The Secret goes away with the client: delete revokes everything.
		patch := client.MergeFrom(chosen.DeepCopy())
		chosen.OwnerReferences = append(chosen.OwnerReferences, metav1.OwnerReference{
			APIVersion: latchkeyv1alpha1.GroupVersion.String(), Kind: latchkeyv1alpha1.ApiClientKind,
			Name: c.Name, UID: c.UID, BlockOwnerDeletion: ptr.To(false),
		})
		chosen.StringData = nil
		if err := s.c.Patch(ctx, chosen, patch); err != nil {
			s.warn("could not make Secret %s/%s owned by ApiClient %s (delete it yourself after the client): %v", s.namespace, chosen.Name, c.Name, err)
		}
	}

	key := types.NamespacedName{Namespace: s.namespace, Name: c.Name}
	c, err := s.waitClient(ctx, key, "Ready", clientIssued)
	if err != nil {
		return err
	}
	sec, err := s.waitSecret(ctx, c.Status.SecretName, c.Status.TokenID)
	if err != nil {
		s.warn("%v", err)
	}
	rec := clientRecord(c, sec)
	if r.OrganizationID != "" {
		rec.OrganizationID = organizationID(r.OrganizationID)
	}
	return printClients(s.streams.Out, s.format, rec)
}

// readSecretFile reads a client secret from path ("-": in), without its
// trailing line breaks (what echo and openssl rand add).
func readSecretFile(path string, in io.Reader) (string, error) {
	what := "--secret-file -"
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return "", fmt.Errorf("reading --secret-file: %w", err)
		}
		defer func() { _ = f.Close() }()
		in, what = f, "--secret-file "+path
	}
	if in == nil {
		return "", fmt.Errorf("%s: there is no standard input to read the secret from", what)
	}
	b, err := io.ReadAll(io.LimitReader(in, maxSecretFileSize+1))
	if err != nil {
		return "", fmt.Errorf("reading the client secret (%s): %w", what, err)
	}
	if len(b) > maxSecretFileSize {
		return "", fmt.Errorf("%s is larger than %d KiB: give a file that holds only the client secret", what, maxSecretFileSize>>10)
	}
	v := strings.TrimRight(string(b), "\r\n")
	if v == "" {
		return "", fmt.Errorf("%s is empty: put the client secret in it, or leave the flag out to have one generated", what)
	}
	return v, nil
}
