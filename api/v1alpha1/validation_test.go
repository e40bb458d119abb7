package v1alpha1_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/latchkey-dev/latchkey/internal/testenv"
)

// These tests prove the CRD schema and its CEL rules against a real API
// server, with no webhook installed: what they reject is rejected even when
// the operator is down. Objects are written as YAML, as users write them, and
// sent with strict field validation, as `kubectl apply` does by default.

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env, testenv.Options{}) }

// schemaCase creates obj; when update is set, it then replaces the spec of the
// stored object with update's spec. wantErr is a substring of the API
// server's error for the last write; empty means the write must be admitted.
type schemaCase struct {
	name    string
	obj     string
	update  string
	wantErr string
	// check, when set, inspects the stored object after an admitted write.
	check func(t *testing.T, got *unstructured.Unstructured)
}

const (
	msgScopesImmutable     = "spec.scopes is immutable: create a new ApiClient with the scopes you need and delete this one"
	msgTenantImmutable     = "spec.tenant is immutable: create a new ApiClient bound to the other tenant and delete this one"
	msgTenantAddRemove     = "spec.tenant is immutable and cannot be added or removed: create a new ApiClient with the tenant you need and delete this one"
	msgTenantRequired      = "spec.tenant is required unless every scope is global ('system'): set spec.tenant"
	msgClientIDImmutable   = "spec.clientID is immutable: create a new ApiClient with the client id you need and delete this one"
	msgClientIDAddRemove   = "spec.clientID is immutable and cannot be added or removed: create a new ApiClient with the client id you need and delete this one"
	msgPermissionScope     = "each permission must start with one of spec.scopes and a dot"
	msgClientNameImmutable = "spec.clientName is immutable: create a new CredentialGrant for the other client and delete this one"
	msgTypeImmutable       = "spec.type is immutable: create a new CredentialGrant of the type you need and delete this one"

	// What the schema says instead of a regular expression.
	msgScopeName      = "each entry of spec.scopes must be a scope name: lower-case letters, digits and '-', starting and ending with a letter or digit, with no dot (for example 'blogs' or 'system'); a permission such as 'blogs.read' belongs in spec.permissions"
	msgPermissionName = "each entry of spec.permissions must be a scope and an action joined by dots, in lower-case letters, digits, '-' and '_' (for example 'blogs.read' or 'proposals.votes.create_vote'): fix or remove the entry"
	msgTenantName     = "spec.tenant must be the id or host of the organization: letters, digits, '-', '_' and '.', starting and ending with a letter or digit (for example '2' or 'org-2.example'); leave it out only when every scope is 'system'"
	msgClientIDName   = "spec.clientID must be 3 to 128 characters: letters, digits, '.', '_', '~' and '-', starting with a letter or digit (for example 'blog-reader'); leave it out to have one generated"
	msgSecretRefName  = "spec.clientSecretRef.name must be the name of a Secret in the ApiClient's namespace: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit (for example 'blog-reader-secret'), with no namespace and no '/'"
	msgSecretRefKey   = "spec.clientSecretRef.key must be a key of the Secret's data: letters, digits, '-', '_' and '.' only (for example 'client_secret'); leave it out for the default client_secret"
	msgSecretName     = "spec.secretName must be a Secret name: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters (for example 'blog-reader-credentials'); leave it out to use the object's name"
	msgClientName     = "spec.clientName must be the name of an ApiClient in this namespace: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit (for example 'blog-reader')"

	// Request scopes and attributes.
	msgRequestNoPath   = "each entry of spec.allowedRequests must be a method and a path prefix separated by one space, such as 'GET /api/v1/reports' or '* /api/v1/reports': to allow a method on every path, write 'GET /'"
	msgRequestMethod   = "each entry of spec.allowedRequests must start with '*' or an upper-case HTTP method such as GET or POST, then one space and the path: write 'GET /api/v1/reports', not 'get /api/v1/reports'"
	msgRequestRelative = "the path in each entry of spec.allowedRequests must be absolute, starting with '/': write 'GET /api/v1/reports', not 'GET api/v1/reports'"
	msgRequestPlain    = "the path in each entry of spec.allowedRequests must be a plain path prefix: segments of letters, digits, '-', '.', '_', '~', ':' and '@' joined by single '/', with no '.' or '..' segment, no query, and no trailing '/' (write 'GET /api/v1/reports': it also covers everything under /api/v1/reports/)"
	msgAttrKey         = "each key of spec.attributes must be a DNS label: 1 to 63 lower-case letters, digits and '-', starting and ending with a letter or digit (for example 'plan' or 'rate-tier'); it becomes the header name X-Latchkey-Attr-<key>"
	msgAttrValue       = "each value of spec.attributes must be 1 to 64 printable ASCII characters (letters, digits, punctuation, inner spaces), with no leading or trailing space and no line break or control character (for example 'small' or 'gold'): it is sent as an HTTP header value"
)

// attributeCases are the rows for spec.attributes, the same on ApiClient and
// CredentialGrant; spec is the rest of the object's spec.
func attributeCases(kind, spec string) []schemaCase {
	obj := func(attrs string) string {
		return "{kind: " + kind + ", spec: {" + spec + ", attributes: " + attrs + "}}"
	}
	return []schemaCase{
		{name: "attributes admitted", obj: obj(`{plan: small, rate-tier: "2", note: "gold plan, EU"}`)},
		{name: "attributes editable", obj: obj(`{plan: small}`), update: obj(`{plan: large}`)},
		{name: "attribute key upper case", obj: obj(`{Plan: small}`), wantErr: msgAttrKey},
		{name: "attribute key with a dot", obj: obj(`{a.b: small}`), wantErr: msgAttrKey},
		{name: "attribute key with an underscore", obj: obj(`{rate_tier: "1"}`), wantErr: msgAttrKey},
		{name: "attribute key longer than 63", obj: obj(`{` + strings.Repeat("k", 64) + `: x}`), wantErr: msgAttrKey},
		{name: "attribute value empty", obj: obj(`{plan: ""}`), wantErr: msgAttrValue},
		{name: "attribute value longer than 64", obj: obj(`{plan: ` + strings.Repeat("v", 65) + `}`), wantErr: "spec.attributes.plan: Too long: may not be more than 64"},
		{name: "attribute value with CR LF (header injection)", obj: obj(`{plan: "small\r\nX-Latchkey-Client-Id: victim"}`), wantErr: msgAttrValue},
		{name: "attribute value with a tab", obj: obj(`{plan: "a\tb"}`), wantErr: msgAttrValue},
		{name: "attribute value with NUL", obj: obj(`{plan: "a\0b"}`), wantErr: msgAttrValue},
		{name: "attribute value not ASCII", obj: obj(`{plan: "été"}`), wantErr: msgAttrValue},
		{name: "attribute value with a trailing space", obj: obj(`{plan: "small "}`), wantErr: msgAttrValue},
		{name: "more than 16 attributes", obj: obj(`{` + numberedMap("k", 17) + `}`), wantErr: "spec.attributes: Too many: 17: must have at most 16 items"},
	}
}

// numberedMap returns "k0: v, k1: v, ..." with n entries.
func numberedMap(prefix string, n int) string {
	items := make([]string, n)
	for i := range items {
		items[i] = prefix + strconv.Itoa(i) + ": v"
	}
	return strings.Join(items, ", ")
}

func TestApiClientSchema(t *testing.T) {
	runSchemaCases(t, append(attributeCases("ApiClient", "scopes: [system]"), []schemaCase{
		// Admitted.
		{
			name: "system-only client needs no tenant, active and defaults",
			obj: `
kind: ApiClient
spec:
  scopes: [system]`,
			check: func(t *testing.T, got *unstructured.Unstructured) {
				if v, found, _ := unstructured.NestedBool(got.Object, "spec", "active"); !found || !v {
					t.Errorf("spec.active = %v (found %v), want the default true", v, found)
				}
			},
		},
		{
			name: "system client with system permission",
			obj: `
kind: ApiClient
spec:
  scopes: [system]
  permissions: [system.organizations.update]`,
		},
		{
			name: "system client may still be bound to a tenant",
			obj: `
kind: ApiClient
spec:
  scopes: [system]
  tenant: "2"`,
		},
		{
			name: "blogs reader bound to a tenant",
			obj: `
kind: ApiClient
spec:
  scopes: [blogs]
  permissions: [blogs.read]
  tenant: "2"`,
		},
		{
			name: "every field set",
			obj: `
kind: ApiClient
spec:
  scopes: [proposals, meetings, system]
  permissions: [proposals.read, meetings.read, system.organizations.read, proposals.votes.create_vote]
  tenant: org-2.example
  active: false
  clientID: sysadmin-org
  clientSecretRef: {name: sysadmin-secret}
  allowImpersonate: true
  allowLogin: true
  displayName: Everything
  secretName: everything.credentials
  secretTemplate: {labels: {team: web}, annotations: {note: sample}}
  rotation: {gracePeriod: 1h}
  deletionPolicy: RequireInactive`,
			check: func(t *testing.T, got *unstructured.Unstructured) {
				if v, _, _ := unstructured.NestedBool(got.Object, "spec", "active"); v {
					t.Errorf("spec.active = true, want the false that was set")
				}
				if v, _, _ := unstructured.NestedString(got.Object, "spec", "clientSecretRef", "key"); v != "client_secret" {
					t.Errorf("spec.clientSecretRef.key = %q, want the default client_secret", v)
				}
			},
		},

		// Scopes.
		{
			name:    "scopes missing",
			obj:     `{kind: ApiClient, spec: {tenant: "2"}}`,
			wantErr: "spec.scopes: Required value",
		},
		{
			name:    "scopes empty",
			obj:     `{kind: ApiClient, spec: {scopes: [], tenant: "2"}}`,
			wantErr: "spec.scopes in body should have at least 1 items",
		},
		{
			name:    "scopes duplicated (listType=set)",
			obj:     `{kind: ApiClient, spec: {scopes: [blogs, blogs], tenant: "2"}}`,
			wantErr: `spec.scopes[1]: Duplicate value: "blogs"`,
		},
		{
			name:    "scope with upper case",
			obj:     `{kind: ApiClient, spec: {scopes: [Blogs], tenant: "2"}}`,
			wantErr: "spec.scopes: Invalid value: " + msgScopeName,
		},
		{
			name:    "scope with a dot",
			obj:     `{kind: ApiClient, spec: {scopes: [blogs.read], tenant: "2"}}`,
			wantErr: msgScopeName,
		},
		{
			name:    "scope empty",
			obj:     `{kind: ApiClient, spec: {scopes: [""], tenant: "2"}}`,
			wantErr: msgScopeName,
		},
		{
			name:    "scope longer than 63",
			obj:     `{kind: ApiClient, spec: {scopes: [` + strings.Repeat("a", 64) + `], tenant: "2"}}`,
			wantErr: "spec.scopes[0]: Too long: may not be more than 63",
		},
		{
			name:    "more than 32 scopes",
			obj:     `{kind: ApiClient, spec: {scopes: [` + numbered("s", 33) + `], tenant: "2"}}`,
			wantErr: "spec.scopes: Too many: 33: must have at most 32 items",
		},

		// Permissions.
		{
			name:    "permission outside the scopes",
			obj:     `{kind: ApiClient, spec: {scopes: [blogs], permissions: [blogs.read, proposals.read], tenant: "2"}}`,
			wantErr: msgPermissionScope,
		},
		{
			name:    "permission that only shares a prefix with a scope",
			obj:     `{kind: ApiClient, spec: {scopes: [blog], permissions: [blogs.read], tenant: "2"}}`,
			wantErr: msgPermissionScope,
		},
		{
			name:    "permission without a name after the scope",
			obj:     `{kind: ApiClient, spec: {scopes: [blogs], permissions: [blogs], tenant: "2"}}`,
			wantErr: "spec.permissions: Invalid value: " + msgPermissionName,
		},
		{
			name:    "permission duplicated",
			obj:     `{kind: ApiClient, spec: {scopes: [blogs], permissions: [blogs.read, blogs.read], tenant: "2"}}`,
			wantErr: `spec.permissions[1]: Duplicate value: "blogs.read"`,
		},
		{
			name:    "permission longer than 253",
			obj:     `{kind: ApiClient, spec: {scopes: [blogs], permissions: [blogs.` + strings.Repeat("r", 248) + `], tenant: "2"}}`,
			wantErr: "spec.permissions[0]: Too long: may not be more than 253",
		},

		// Tenant.
		{
			name:    "non-global scope without tenant",
			obj:     `{kind: ApiClient, spec: {scopes: [blogs]}}`,
			wantErr: msgTenantRequired,
		},
		{
			name:    "system and a non-global scope without tenant",
			obj:     `{kind: ApiClient, spec: {scopes: [system, blogs]}}`,
			wantErr: msgTenantRequired,
		},
		{
			name:    "tenant empty",
			obj:     `{kind: ApiClient, spec: {scopes: [blogs], tenant: ""}}`,
			wantErr: `spec.tenant: Invalid value: "": ` + msgTenantName,
		},
		{
			name:    "tenant with a space",
			obj:     `{kind: ApiClient, spec: {scopes: [blogs], tenant: "org 2"}}`,
			wantErr: msgTenantName,
		},

		// Client id and secret reference.
		{
			name:    "clientID too short",
			obj:     `{kind: ApiClient, spec: {scopes: [system], clientID: ab}}`,
			wantErr: `spec.clientID: Invalid value: "ab": ` + msgClientIDName,
		},
		{
			name:    "clientID with a space",
			obj:     `{kind: ApiClient, spec: {scopes: [system], clientID: "sysadmin org"}}`,
			wantErr: msgClientIDName,
		},
		{
			name:    "clientID longer than 128",
			obj:     `{kind: ApiClient, spec: {scopes: [system], clientID: ` + strings.Repeat("a", 129) + `}}`,
			wantErr: "spec.clientID: Too long: may not be more than 128",
		},
		{
			name:    "clientSecretRef has no namespace field",
			obj:     `{kind: ApiClient, spec: {scopes: [system], clientSecretRef: {name: s, namespace: other}}}`,
			wantErr: `unknown field "spec.clientSecretRef.namespace"`,
		},
		{
			name:    "clientSecretRef without name",
			obj:     `{kind: ApiClient, spec: {scopes: [system], clientSecretRef: {key: password}}}`,
			wantErr: "spec.clientSecretRef.name: Required value",
		},
		{
			name:    "clientSecretRef key with a slash",
			obj:     `{kind: ApiClient, spec: {scopes: [system], clientSecretRef: {name: s, key: a/b}}}`,
			wantErr: `spec.clientSecretRef.key: Invalid value: "a/b": ` + msgSecretRefKey,
		},
		{
			name:    "clientSecretRef name with a namespace",
			obj:     `{kind: ApiClient, spec: {scopes: [system], clientSecretRef: {name: other/s}}}`,
			wantErr: `spec.clientSecretRef.name: Invalid value: "other/s": ` + msgSecretRefName,
		},
		{
			name:    "clientSecretRef name not a Secret name",
			obj:     `{kind: ApiClient, spec: {scopes: [system], clientSecretRef: {name: My_Secret}}}`,
			wantErr: msgSecretRefName,
		},
		{
			name:    "clientSecretRef name empty",
			obj:     `{kind: ApiClient, spec: {scopes: [system], clientSecretRef: {name: ""}}}`,
			wantErr: msgSecretRefName,
		},

		// Other fields.
		{
			name:    "deletionPolicy outside the enum",
			obj:     `{kind: ApiClient, spec: {scopes: [system], deletionPolicy: Never}}`,
			wantErr: `spec.deletionPolicy: Unsupported value: "Never"`,
		},
		{
			name:    "displayName longer than 256",
			obj:     `{kind: ApiClient, spec: {scopes: [system], displayName: ` + strings.Repeat("x", 257) + `}}`,
			wantErr: "spec.displayName: Too long: may not be more than 256",
		},
		{
			name:    "secretName not a DNS subdomain",
			obj:     `{kind: ApiClient, spec: {scopes: [system], secretName: My_Secret}}`,
			wantErr: `spec.secretName: Invalid value: "My_Secret": ` + msgSecretName,
		},
		{
			name:    "active not a boolean",
			obj:     `{kind: ApiClient, spec: {scopes: [system], active: "yes"}}`,
			wantErr: `spec.active: Invalid value: "string": spec.active in body must be of type boolean`,
		},
		{
			name:    "unknown spec field",
			obj:     `{kind: ApiClient, spec: {scopes: [system], organizationID: 2}}`,
			wantErr: `unknown field "spec.organizationID"`,
		},

		// Updates: immutable fields.
		{
			name:    "scopes cannot gain a scope",
			obj:     `{kind: ApiClient, spec: {scopes: [blogs], tenant: "2"}}`,
			update:  `{kind: ApiClient, spec: {scopes: [blogs, proposals], tenant: "2"}}`,
			wantErr: "spec.scopes: Invalid value: " + msgScopesImmutable,
		},
		{
			name:    "scopes cannot lose a scope",
			obj:     `{kind: ApiClient, spec: {scopes: [system, blogs], tenant: "2"}}`,
			update:  `{kind: ApiClient, spec: {scopes: [system], tenant: "2"}}`,
			wantErr: msgScopesImmutable,
		},
		{
			name:   "scopes may be reordered (a set)",
			obj:    `{kind: ApiClient, spec: {scopes: [blogs, proposals], tenant: "2"}}`,
			update: `{kind: ApiClient, spec: {scopes: [proposals, blogs], tenant: "2"}}`,
		},
		{
			name:    "tenant cannot change",
			obj:     `{kind: ApiClient, spec: {scopes: [blogs], tenant: "2"}}`,
			update:  `{kind: ApiClient, spec: {scopes: [blogs], tenant: "3"}}`,
			wantErr: "spec.tenant: Invalid value: \"3\": " + msgTenantImmutable,
		},
		{
			name:    "tenant cannot be added",
			obj:     `{kind: ApiClient, spec: {scopes: [system]}}`,
			update:  `{kind: ApiClient, spec: {scopes: [system], tenant: "2"}}`,
			wantErr: "spec.tenant: Invalid value: " + msgTenantAddRemove,
		},
		{
			name:    "tenant cannot be removed",
			obj:     `{kind: ApiClient, spec: {scopes: [system], tenant: "2"}}`,
			update:  `{kind: ApiClient, spec: {scopes: [system]}}`,
			wantErr: msgTenantAddRemove,
		},
		{
			name:    "clientID cannot change",
			obj:     `{kind: ApiClient, spec: {scopes: [system], clientID: sysadmin-org}}`,
			update:  `{kind: ApiClient, spec: {scopes: [system], clientID: sysadmin-org2}}`,
			wantErr: "spec.clientID: Invalid value: \"sysadmin-org2\": " + msgClientIDImmutable,
		},
		{
			name:    "clientID cannot be added",
			obj:     `{kind: ApiClient, spec: {scopes: [system]}}`,
			update:  `{kind: ApiClient, spec: {scopes: [system], clientID: sysadmin-org}}`,
			wantErr: "spec.clientID: Invalid value: " + msgClientIDAddRemove,
		},
		{
			name:    "clientID cannot be removed",
			obj:     `{kind: ApiClient, spec: {scopes: [system], clientID: sysadmin-org}}`,
			update:  `{kind: ApiClient, spec: {scopes: [system]}}`,
			wantErr: msgClientIDAddRemove,
		},
		{
			name:    "permissions are still checked against the scopes on update",
			obj:     `{kind: ApiClient, spec: {scopes: [blogs], permissions: [blogs.read], tenant: "2"}}`,
			update:  `{kind: ApiClient, spec: {scopes: [blogs], permissions: [blogs.read, system.organizations.update], tenant: "2"}}`,
			wantErr: msgPermissionScope,
		},

		// Updates: editable fields.
		{
			name:   "permissions, active, names and secret reference are editable",
			obj:    `{kind: ApiClient, spec: {scopes: [blogs], permissions: [blogs.read], tenant: "2", clientID: blog-reader}}`,
			update: `{kind: ApiClient, spec: {scopes: [blogs], permissions: [blogs.write, blogs.comments.read], tenant: "2", clientID: blog-reader, active: false, displayName: Renamed, allowLogin: true, clientSecretRef: {name: s}, secretName: other, deletionPolicy: Delete}}`,
			check: func(t *testing.T, got *unstructured.Unstructured) {
				perms, _, _ := unstructured.NestedStringSlice(got.Object, "spec", "permissions")
				if strings.Join(perms, ",") != "blogs.write,blogs.comments.read" {
					t.Errorf("spec.permissions = %v after update", perms)
				}
			},
		},
	}...))
}

func TestCredentialGrantSchema(t *testing.T) {
	runSchemaCases(t, append(attributeCases("CredentialGrant", "clientName: c"), []schemaCase{
		// Admitted.
		{
			name: "minimal grant defaults to bearer",
			obj:  `{kind: CredentialGrant, spec: {clientName: blogs-reader}}`,
			check: func(t *testing.T, got *unstructured.Unstructured) {
				if v, _, _ := unstructured.NestedString(got.Object, "spec", "type"); v != "bearer" {
					t.Errorf("spec.type = %q, want the default bearer", v)
				}
			},
		},
		{
			name: "bearer with expiry, description and permissions",
			obj: `
kind: CredentialGrant
spec:
  clientName: blogs-reader
  type: bearer
  permissions: [blogs.read]
  expiresAt: "2030-01-01T00:00:00Z"
  description: Nightly mirror job
  secretName: mirror-token
  secretTemplate: {labels: {app: mirror}}
  rotation: {gracePeriod: 30m}`,
		},
		{
			name: "expiresAt in the past expires at once, and is admitted",
			obj:  `{kind: CredentialGrant, spec: {clientName: c, expiresAt: "2001-01-01T00:00:00Z"}}`,
		},
		{
			name: "key-auth",
			obj:  `{kind: CredentialGrant, spec: {clientName: c, type: key-auth}}`,
		},
		{
			name: "basic-auth",
			obj:  `{kind: CredentialGrant, spec: {clientName: c, type: basic-auth}}`,
		},

		// Rejected.
		{
			name:    "clientName missing",
			obj:     `{kind: CredentialGrant, spec: {type: bearer}}`,
			wantErr: "spec.clientName: Required value",
		},
		{
			name:    "clientName not a resource name",
			obj:     `{kind: CredentialGrant, spec: {clientName: Blogs_Reader}}`,
			wantErr: `spec.clientName: Invalid value: "Blogs_Reader": ` + msgClientName,
		},
		{
			name:    "clientName empty",
			obj:     `{kind: CredentialGrant, spec: {clientName: ""}}`,
			wantErr: msgClientName,
		},
		{
			name:    "secretName not a DNS subdomain",
			obj:     `{kind: CredentialGrant, spec: {clientName: c, secretName: -creds}}`,
			wantErr: `spec.secretName: Invalid value: "-creds": ` + msgSecretName,
		},
		{
			name:    "secretName longer than 253",
			obj:     `{kind: CredentialGrant, spec: {clientName: c, secretName: ` + strings.Repeat("s", 254) + `}}`,
			wantErr: "spec.secretName: Too long: may not be more than 253",
		},
		{
			name:    "clientName longer than 253",
			obj:     `{kind: CredentialGrant, spec: {clientName: ` + strings.Repeat("c", 254) + `}}`,
			wantErr: "spec.clientName: Too long: may not be more than 253",
		},
		{
			name:    "permission longer than 253",
			obj:     `{kind: CredentialGrant, spec: {clientName: c, permissions: [blogs.` + strings.Repeat("r", 248) + `]}}`,
			wantErr: "spec.permissions[0]: Too long: may not be more than 253",
		},
		{
			name:    "type outside the enum",
			obj:     `{kind: CredentialGrant, spec: {clientName: c, type: oauth2}}`,
			wantErr: `spec.type: Unsupported value: "oauth2": supported values: "bearer", "key-auth", "basic-auth"`,
		},
		{
			name:    "expiresAt not RFC 3339",
			obj:     `{kind: CredentialGrant, spec: {clientName: c, expiresAt: tomorrow}}`,
			wantErr: "spec.expiresAt in body must be of type date-time",
		},
		{
			name:    "description longer than 1024",
			obj:     `{kind: CredentialGrant, spec: {clientName: c, description: ` + strings.Repeat("d", 1025) + `}}`,
			wantErr: "spec.description: Too long: may not be more than 1024",
		},
		{
			name:    "permission duplicated",
			obj:     `{kind: CredentialGrant, spec: {clientName: c, permissions: [blogs.read, blogs.read]}}`,
			wantErr: `spec.permissions[1]: Duplicate value: "blogs.read"`,
		},
		{
			name:    "permission without a dot",
			obj:     `{kind: CredentialGrant, spec: {clientName: c, permissions: [read]}}`,
			wantErr: "spec.permissions: Invalid value: " + msgPermissionName,
		},

		// Updates.
		{
			name:    "clientName cannot change",
			obj:     `{kind: CredentialGrant, spec: {clientName: blogs-reader}}`,
			update:  `{kind: CredentialGrant, spec: {clientName: other-client}}`,
			wantErr: "spec.clientName: Invalid value: \"other-client\": " + msgClientNameImmutable,
		},
		{
			name:    "type cannot change",
			obj:     `{kind: CredentialGrant, spec: {clientName: c, type: bearer}}`,
			update:  `{kind: CredentialGrant, spec: {clientName: c, type: key-auth}}`,
			wantErr: "spec.type: Invalid value: \"key-auth\": " + msgTypeImmutable,
		},
		{
			name:    "type cannot fall back to the default by removing it",
			obj:     `{kind: CredentialGrant, spec: {clientName: c, type: basic-auth}}`,
			update:  `{kind: CredentialGrant, spec: {clientName: c}}`,
			wantErr: msgTypeImmutable,
		},
		{
			name:   "defaulted type may be spelled out",
			obj:    `{kind: CredentialGrant, spec: {clientName: c}}`,
			update: `{kind: CredentialGrant, spec: {clientName: c, type: bearer}}`,
		},
		// Request scopes.
		{
			name: "allowedRequests admitted",
			obj: `
kind: CredentialGrant
spec:
  clientName: c
  allowedRequests: ["GET /api/v1/reports", "* /api/v1/drafts", "POST /", "GET /v1/things:batchGet", "PROPFIND /dav/~me/x.y-z_@1"]`,
		},
		{
			name:    "allowedRequests: GET without a path",
			obj:     `{kind: CredentialGrant, spec: {clientName: c, allowedRequests: [GET]}}`,
			wantErr: "spec.allowedRequests: Invalid value: " + msgRequestNoPath,
		},
		{
			name:    "allowedRequests: relative path",
			obj:     `{kind: CredentialGrant, spec: {clientName: c, allowedRequests: ["GET api/v1/reports"]}}`,
			wantErr: msgRequestRelative,
		},
		{
			name:    "allowedRequests: two spaces read as a relative path",
			obj:     `{kind: CredentialGrant, spec: {clientName: c, allowedRequests: ["GET  /api/v1/reports"]}}`,
			wantErr: msgRequestRelative,
		},
		{
			name:    "allowedRequests: lower-case method",
			obj:     `{kind: CredentialGrant, spec: {clientName: c, allowedRequests: ["get /api/v1/reports"]}}`,
			wantErr: msgRequestMethod,
		},
		{
			name:    "allowedRequests: path first",
			obj:     `{kind: CredentialGrant, spec: {clientName: c, allowedRequests: ["/api/v1/reports GET"]}}`,
			wantErr: msgRequestMethod,
		},
		{
			name:    "allowedRequests: dot-dot segment",
			obj:     `{kind: CredentialGrant, spec: {clientName: c, allowedRequests: ["GET /api/v1/reports/../admin"]}}`,
			wantErr: msgRequestPlain,
		},
		{
			name:    "allowedRequests: trailing slash",
			obj:     `{kind: CredentialGrant, spec: {clientName: c, allowedRequests: ["GET /api/v1/reports/"]}}`,
			wantErr: msgRequestPlain,
		},
		{
			name:    "allowedRequests: double slash",
			obj:     `{kind: CredentialGrant, spec: {clientName: c, allowedRequests: ["GET /api//v1"]}}`,
			wantErr: msgRequestPlain,
		},
		{
			name:    "allowedRequests: query",
			obj:     `{kind: CredentialGrant, spec: {clientName: c, allowedRequests: ["GET /api/v1/reports?x=1"]}}`,
			wantErr: msgRequestPlain,
		},
		{
			name:    "allowedRequests: percent-encoding",
			obj:     `{kind: CredentialGrant, spec: {clientName: c, allowedRequests: ["GET /api%2Fv1"]}}`,
			wantErr: msgRequestPlain,
		},
		{
			name:    "allowedRequests: path parameter",
			obj:     `{kind: CredentialGrant, spec: {clientName: c, allowedRequests: ["GET /api;v=1"]}}`,
			wantErr: msgRequestPlain,
		},
		{
			name:    "allowedRequests duplicated",
			obj:     `{kind: CredentialGrant, spec: {clientName: c, allowedRequests: ["GET /a", "GET /a"]}}`,
			wantErr: `spec.allowedRequests[1]: Duplicate value: "GET /a"`,
		},
		{
			name:    "allowedRequests entry longer than 256",
			obj:     `{kind: CredentialGrant, spec: {clientName: c, allowedRequests: ["GET /` + strings.Repeat("a", 260) + `"]}}`,
			wantErr: "spec.allowedRequests[0]: Too long: may not be more than 256",
		},
		{
			name:    "more than 32 allowedRequests",
			obj:     `{kind: CredentialGrant, spec: {clientName: c, allowedRequests: [` + numbered("GET /p", 33) + `]}}`,
			wantErr: "spec.allowedRequests: Too many: 33: must have at most 32 items",
		},
		{
			name:   "allowedRequests editable: narrowed, widened, removed",
			obj:    `{kind: CredentialGrant, spec: {clientName: c, allowedRequests: ["* /api"]}}`,
			update: `{kind: CredentialGrant, spec: {clientName: c, allowedRequests: ["GET /api/v1/reports"]}}`,
		},
		{
			name:   "allowedRequests removed means every request",
			obj:    `{kind: CredentialGrant, spec: {clientName: c, allowedRequests: ["GET /api"]}}`,
			update: `{kind: CredentialGrant, spec: {clientName: c}}`,
		},
		{
			name:   "permissions, expiry and description are editable",
			obj:    `{kind: CredentialGrant, spec: {clientName: c, permissions: [blogs.read], expiresAt: "2030-01-01T00:00:00Z"}}`,
			update: `{kind: CredentialGrant, spec: {clientName: c, permissions: [blogs.write], expiresAt: "2001-01-01T00:00:00Z", description: expired on purpose}}`,
		},
	}...))
}

// TestClientSecretRefNamespaceIsPruned shows what a client that does not ask
// for strict field validation gets: the unknown namespace field is dropped,
// never stored, so a reference can never leave its namespace.
func TestClientSecretRefNamespaceIsPruned(t *testing.T) {
	ns := env.Namespace(t)
	obj := parseObject(t, `{kind: ApiClient, spec: {scopes: [system], clientSecretRef: {name: s, namespace: other}}}`)
	obj.SetNamespace(ns)
	obj.SetName("pruned")
	c := client.WithFieldValidation(env.Client, metav1.FieldValidationIgnore)
	if err := c.Create(context.Background(), obj); err != nil {
		t.Fatalf("create with field validation Ignore: %v", err)
	}
	got := &unstructured.Unstructured{}
	got.SetGroupVersionKind(obj.GroupVersionKind())
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(obj), got); err != nil {
		t.Fatal(err)
	}
	ref, _, _ := unstructured.NestedMap(got.Object, "spec", "clientSecretRef")
	if _, ok := ref["namespace"]; ok {
		t.Errorf("spec.clientSecretRef.namespace was stored: %v", ref)
	}
	if ref["name"] != "s" {
		t.Errorf("spec.clientSecretRef = %v, want name s", ref)
	}
}

// TestSamplesAreAdmitted applies every object of config/samples, in one
// namespace, as `kubectl apply -f config/samples/` would.
func TestSamplesAreAdmitted(t *testing.T) {
	dir := filepath.Join(testenv.RepoRoot(), "config", "samples")
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples in %s (%v)", dir, err)
	}
	ns := env.Namespace(t)
	c := strictClient()
	kinds := map[string]int{}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
			for {
				obj := &unstructured.Unstructured{}
				if err := dec.Decode(&obj.Object); errors.Is(err, io.EOF) {
					break
				} else if err != nil {
					t.Fatalf("decoding: %v", err)
				}
				if obj.Object == nil {
					continue
				}
				if obj.GetNamespace() != "" {
					t.Errorf("%s %s sets a namespace; samples must apply to any namespace", obj.GetKind(), obj.GetName())
				}
				obj.SetNamespace(ns)
				if err := c.Create(context.Background(), obj); err != nil {
					t.Errorf("creating %s %s: %v", obj.GetKind(), obj.GetName(), err)
				}
				kinds[obj.GetKind()]++
			}
		})
	}
	for _, kind := range []string{"ApiClient", "CredentialGrant", "Secret"} {
		if kinds[kind] == 0 {
			t.Errorf("no %s among the samples", kind)
		}
	}

	// `kubectl apply -k config/samples/` must apply the same files as -f.
	data, err := os.ReadFile(filepath.Join(dir, "Kustomization"))
	if err != nil {
		t.Fatal(err)
	}
	var kustomization struct {
		Resources []string `json:"resources"`
	}
	if err := yaml.Unmarshal(data, &kustomization); err != nil {
		t.Fatalf("parsing Kustomization: %v", err)
	}
	listed := map[string]bool{}
	for _, r := range kustomization.Resources {
		listed[r] = true
	}
	for _, file := range files {
		if !listed[filepath.Base(file)] {
			t.Errorf("config/samples/Kustomization does not list %s", filepath.Base(file))
		}
		delete(listed, filepath.Base(file))
	}
	for r := range listed {
		t.Errorf("config/samples/Kustomization lists %s, which is not a sample file", r)
	}
}

// TestStatusConditionsAreAMap shows that status.conditions is keyed by type
// (listType=map): two conditions of one type are rejected.
func TestStatusConditionsAreAMap(t *testing.T) {
	ns := env.Namespace(t)
	for _, kind := range []string{"ApiClient", "CredentialGrant"} {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			obj := parseObject(t, `{kind: ApiClient, spec: {scopes: [system]}}`)
			if kind == "CredentialGrant" {
				obj = parseObject(t, `{kind: CredentialGrant, spec: {clientName: c}}`)
			}
			obj.SetNamespace(ns)
			obj.SetName("status-" + strings.ToLower(kind))
			if err := env.Client.Create(ctx, obj); err != nil {
				t.Fatal(err)
			}
			cond := map[string]any{"type": "Ready", "status": "True", "reason": "Issued", "message": "ok", "lastTransitionTime": "2026-01-01T00:00:00Z"}
			obj.Object["status"] = map[string]any{"conditions": []any{cond, cond}}
			err := env.Client.Status().Update(ctx, obj)
			if want := `status.conditions[1]: Duplicate value: {"type":"Ready"}`; err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("want %q, got %v", want, err)
			}
			obj.Object["status"] = map[string]any{"conditions": []any{cond}}
			if err := env.Client.Status().Update(ctx, obj); err != nil {
				t.Errorf("one Ready condition: %v", err)
			}
		})
	}
}

func runSchemaCases(t *testing.T, cases []schemaCase) {
	t.Helper()
	ns := env.Namespace(t)
	c := strictClient()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			obj := parseObject(t, tc.obj)
			obj.SetNamespace(ns)
			obj.SetName(objectName(i))
			err := c.Create(ctx, obj)
			if tc.update != "" {
				if err != nil {
					t.Fatalf("creating the object to update: %v", err)
				}
				next := parseObject(t, tc.update)
				obj.Object["spec"] = next.Object["spec"]
				err = c.Update(ctx, obj)
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("want admitted, got: %v", err)
				}
				if tc.check != nil {
					got := &unstructured.Unstructured{}
					got.SetGroupVersionKind(obj.GroupVersionKind())
					if err := c.Get(ctx, client.ObjectKeyFromObject(obj), got); err != nil {
						t.Fatal(err)
					}
					tc.check(t, got)
				}
				return
			}
			if err == nil {
				t.Fatalf("want rejected with %q, got admitted", tc.wantErr)
			}
			if !apierrors.IsInvalid(err) && !apierrors.IsBadRequest(err) {
				t.Errorf("want an Invalid or BadRequest error, got %T: %v", err, err)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error does not contain %q:\n%v", tc.wantErr, err)
			}
			assertActionable(t, err)
		})
	}
}

// strictClient rejects unknown fields instead of pruning them, like kubectl.
func strictClient() client.Client {
	return client.WithFieldValidation(env.Client, metav1.FieldValidationStrict)
}

// parseObject reads a YAML object; apiVersion defaults to latchkey.dev/v1alpha1.
func parseObject(t *testing.T, src string) *unstructured.Unstructured {
	t.Helper()
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(src), &obj.Object); err != nil {
		t.Fatalf("bad test YAML %q: %v", src, err)
	}
	if obj.GetAPIVersion() == "" {
		obj.SetAPIVersion("latchkey.dev/v1alpha1")
	}
	return obj
}

func objectName(i int) string {
	return "case-" + strconv.Itoa(i)
}

// numbered returns "p0, p1, ..." with n items.
func numbered(prefix string, n int) string {
	items := make([]string, n)
	for i := range items {
		items[i] = prefix + strconv.Itoa(i)
	}
	return strings.Join(items, ", ")
}

// assertActionable: a rejection names the field it is about and says what is
// wanted in words (or the limit, or the supported values), never as a
// regular expression a person has to decode.
func assertActionable(t *testing.T, err error) {
	t.Helper()
	msg := err.Error()
	if !strings.Contains(msg, "spec.") && !strings.Contains(msg, "metadata.") {
		t.Errorf("the rejection names no field:\n%s", msg)
	}
	for _, regex := range []string{"should match", "^[", "[a-z", "[A-Za-z", "]*", ")?", "$'", "+$"} {
		if strings.Contains(msg, regex) {
			t.Errorf("the rejection shows a regular expression (%q) instead of saying what to do:\n%s", regex, msg)
		}
	}
}
