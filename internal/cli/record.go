package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
)

// ClientRecord is an API client as Decidim's api-client prints it:
// {"id","secret","name","scopes","permissions","organization_id"}, with
// Latchkey's "tenant". The JSON names are a contract (DESIGN.md, "Commands
// for users"): scripts written for Decidim's output keep working.
type ClientRecord struct {
	// ID is the client id (client_id).
	ID string `json:"id"`
	// Secret is the client secret; absent when it is not shown (grant,
	// revoke, or a Secret the caller may not read).
	Secret *string `json:"secret,omitempty"`
	// Name is spec.displayName, or Decidim's default "API Client ***<last 4
	// characters of the id>".
	Name        string   `json:"name"`
	Scopes      []string `json:"scopes"`
	Permissions []string `json:"permissions"`
	// Tenant is the organization the client is bound to; null for a global
	// (system-only) client.
	Tenant *string `json:"tenant"`
	// OrganizationID repeats Tenant under Decidim's name, as a number when it
	// is one, when create was given --organization-id.
	OrganizationID any `json:"organization_id,omitempty"`
	// Active is printed by activate and deactivate only.
	Active *bool `json:"active,omitempty"`

	// For --format text only.
	resource  string
	namespace string
	active    bool
	ready     string
}

// TokenRecord is a credential issued by issue (or rotated by rotate --grant).
type TokenRecord struct {
	// ID is the token id: the credential's non-secret handle, safe to log.
	ID string `json:"id"`
	// Token is the secret credential, printed once.
	Token    string `json:"token"`
	ClientID string `json:"client_id"`
	// ExpiresAt is RFC 3339, null when the token does not expire.
	ExpiresAt   *string  `json:"expires_at"`
	Permissions []string `json:"permissions"`
	Type        string   `json:"type"`
	// Grant is the CredentialGrant's name (for rotate --grant and kubectl).
	Grant     string `json:"grant"`
	KeyID     string `json:"key_id,omitempty"`
	KeySecret string `json:"key_secret,omitempty"`
	Username  string `json:"username,omitempty"`
	Password  string `json:"password,omitempty"`
}

// DefaultName is Decidim's name for a client created without --name.
func DefaultName(clientID string) string {
	last := clientID
	if r := []rune(clientID); len(r) > 4 {
		last = string(r[len(r)-4:])
	}
	return "API Client ***" + last
}

var numeric = regexp.MustCompile(`^[0-9]{1,15}$`)

// organizationID is the tenant as Decidim prints organization_id: a number
// when it is one.
func organizationID(tenant string) any {
	if numeric.MatchString(tenant) {
		n, _ := strconv.ParseInt(tenant, 10, 64)
		return n
	}
	return tenant
}

// clientRecord builds the record of c; sec (may be nil) supplies the secret.
func clientRecord(c *latchkeyv1alpha1.ApiClient, sec *corev1.Secret) ClientRecord {
	id := c.Status.ClientID
	if id == "" {
		id = c.Spec.ClientID
	}
	r := ClientRecord{
		ID:          id,
		Name:        c.Spec.DisplayName,
		Scopes:      nonNil(c.Spec.Scopes),
		Permissions: nonNil(c.Spec.Permissions),
		resource:    "apiclient/" + c.Name,
		namespace:   c.Namespace,
		active:      c.IsActive(),
		ready:       "Unknown",
	}
	if r.Name == "" {
		r.Name = DefaultName(id)
	}
	if c.Spec.Tenant != "" {
		t := c.Spec.Tenant
		r.Tenant = &t
	}
	if sec != nil {
		v := string(sec.Data[latchkeyv1alpha1.ClientSecretKey])
		r.Secret = &v
	}
	if cond := meta.FindStatusCondition(c.Status.Conditions, latchkeyv1alpha1.ConditionReady); cond != nil {
		r.ready = string(cond.Status)
		if cond.Reason != "" && cond.Status != "True" {
			r.ready += " (" + cond.Reason + ")"
		}
	}
	return r
}

// tokenRecord builds the record of an issued grant from its consumer Secret.
func tokenRecord(g *latchkeyv1alpha1.CredentialGrant, perms []string, sec *corev1.Secret) TokenRecord {
	d := func(k string) string { return string(sec.Data[k]) }
	r := TokenRecord{
		ID:          g.Status.TokenID,
		Token:       d(latchkeyv1alpha1.TokenKey),
		ClientID:    d(latchkeyv1alpha1.ClientIDKey),
		Permissions: nonNil(perms),
		Type:        string(g.EffectiveType()),
		Grant:       g.Name,
	}
	if v := d(latchkeyv1alpha1.ExpiresAtKey); v != "" {
		r.ExpiresAt = &v
	} else if g.Status.ExpiresAt != nil {
		v := g.Status.ExpiresAt.UTC().Format(time.RFC3339)
		r.ExpiresAt = &v
	}
	switch g.EffectiveType() {
	case latchkeyv1alpha1.CredentialTypeKeyAuth:
		r.KeyID, r.KeySecret = d(latchkeyv1alpha1.KeyIDKey), d(latchkeyv1alpha1.KeySecretKey)
	case latchkeyv1alpha1.CredentialTypeBasicAuth:
		r.Username, r.Password = d(latchkeyv1alpha1.UsernameKey), d(latchkeyv1alpha1.PasswordKey)
	}
	if r.ClientID == "" {
		r.ClientID = g.Status.ClientID
	}
	return r
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// printJSON writes v as one line of JSON, as Decidim does.
func printJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// printClients writes records: one JSON object per line, or aligned text
// blocks separated by a blank line.
func printClients(w io.Writer, format string, recs ...ClientRecord) error {
	if format == FormatJSON {
		for _, r := range recs {
			if err := printJSON(w, r); err != nil {
				return err
			}
		}
		return nil
	}
	for i, r := range recs {
		if i > 0 {
			if _, err := fmt.Fprintln(w); err != nil {
				return err
			}
		}
		kv := [][2]string{{"ID", r.ID}}
		if r.Secret != nil {
			kv = append(kv, [2]string{"Secret", *r.Secret})
		}
		tenant := "(none: global client)"
		if r.Tenant != nil {
			tenant = *r.Tenant
		}
		kv = append(kv,
			[2]string{"Name", r.Name},
			[2]string{"Scopes", list(r.Scopes)},
			[2]string{"Permissions", list(r.Permissions)},
			[2]string{"Tenant", tenant},
			[2]string{"Active", strconv.FormatBool(r.active)},
			[2]string{"Ready", r.ready},
			[2]string{"Resource", r.resource + " -n " + r.namespace},
		)
		if err := printPairs(w, kv); err != nil {
			return err
		}
	}
	return nil
}

func printToken(w io.Writer, format string, r TokenRecord) error {
	if format == FormatJSON {
		return printJSON(w, r)
	}
	expires := "never"
	if r.ExpiresAt != nil {
		expires = *r.ExpiresAt
	}
	kv := [][2]string{
		{"Token ID", r.ID},
		{"Token", r.Token},
		{"Client ID", r.ClientID},
		{"Type", r.Type},
		{"Expires at", expires},
		{"Permissions", list(r.Permissions)},
	}
	if r.KeyID != "" {
		kv = append(kv, [2]string{"Key ID", r.KeyID}, [2]string{"Key secret", r.KeySecret})
	}
	if r.Username != "" {
		kv = append(kv, [2]string{"Username", r.Username}, [2]string{"Password", r.Password})
	}
	kv = append(kv, [2]string{"Grant", r.Grant})
	return printPairs(w, kv)
}

func printPairs(w io.Writer, kv [][2]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, p := range kv {
		if _, err := fmt.Fprintf(tw, "%s:\t%s\n", p[0], p[1]); err != nil {
			return err
		}
	}
	return tw.Flush()
}

func list(s []string) string {
	if len(s) == 0 {
		return "(none)"
	}
	return strings.Join(s, ", ")
}
