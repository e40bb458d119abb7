package verifier

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/backing"
	"github.com/latchkey-dev/latchkey/internal/index"
	"github.com/latchkey-dev/latchkey/internal/permissions"
)

// IndexClientSecretByClientID indexes the backing tokens of client secrets by
// client id, for HTTP Basic client_id:client_secret and client_credentials.
const IndexClientSecretByClientID = "latchkey.clientSecretByClientID"

// Identity is a verified caller. It never holds a secret.
type Identity struct {
	// Kind is "ApiClient" (client id and secret, or an access token) or
	// "CredentialGrant" (a grant's token).
	Kind string `json:"kind"`
	// TokenID is the credential's non-secret handle.
	TokenID   string `json:"token_id"`
	ClientID  string `json:"client_id"`
	Tenant    string `json:"tenant,omitempty"`
	Namespace string `json:"namespace"`
	// Name is the ApiClient's or CredentialGrant's name.
	Name string `json:"name"`
	// ClientName is the ApiClient's name.
	ClientName string `json:"client_name"`
	// Type is the credential's type: client-secret, access-token, bearer,
	// key-auth or basic-auth.
	Type             string     `json:"type"`
	Scopes           []string   `json:"scopes"`
	Permissions      []string   `json:"permissions"`
	AllowImpersonate bool       `json:"allow_impersonate"`
	AllowLogin       bool       `json:"allow_login"`
	Description      string     `json:"description,omitempty"`
	IssuedAt         *time.Time `json:"issued_at,omitempty"`
	ExpiresAt        *time.Time `json:"expires_at,omitempty"`
	LastUsedAt       *time.Time `json:"last_used_at,omitempty"`
	LastUsedFrom     string     `json:"last_used_from,omitempty"`
	// JTI is an access token's own id (its TokenID is the backing token of
	// the client secret it was issued against).
	JTI string `json:"jti,omitempty"`
	// AllowedRequests is a grant's spec.allowedRequests ("METHOD
	// /path/prefix"); empty: every request. Shared with the informer's
	// object: read-only.
	AllowedRequests []string `json:"allowed_requests,omitempty"`
	// Attributes are the client's spec.attributes overlaid with the grant's
	// (the grant wins). Shared with the informer's object when only one
	// side has any: read-only.
	Attributes map[string]latchkeyv1alpha1.AttributeValue `json:"attributes,omitempty"`

	// owner is the object whose status records usage.
	owner usageKey
	// headers, when set, are headerValues precomputed (memo.go); shared,
	// read-only.
	headers []string
}

// Outcome names why a credential was rejected; it is the result label of
// latchkey_verifications_total and goes to logs, never to the caller.
type Outcome string

// Outcomes.
const (
	OutcomeValid       Outcome = "valid"
	OutcomeMissing     Outcome = "missing"
	OutcomeMalformed   Outcome = "malformed"
	OutcomeUnknown     Outcome = "unknown"
	OutcomeWrongSecret Outcome = "wrong_secret"
	OutcomeExpired     Outcome = "expired"
	OutcomeRevoked     Outcome = "revoked"
	OutcomeInactive    Outcome = "inactive"
	OutcomeForbidden   Outcome = "forbidden"
	OutcomeRateLimited Outcome = "rate_limited"
	OutcomeUnavailable Outcome = "unavailable"
)

var allOutcomes = []Outcome{OutcomeValid, OutcomeMissing, OutcomeMalformed, OutcomeUnknown, OutcomeWrongSecret,
	OutcomeExpired, OutcomeRevoked, OutcomeInactive, OutcomeForbidden, OutcomeRateLimited, OutcomeUnavailable}

// rejection is an authentication failure with its outcome.
type rejection struct{ outcome Outcome }

func (r rejection) Error() string { return string(r.outcome) }

func reject(o Outcome) error { return rejection{o} }

func outcomeOf(err error) Outcome {
	var r rejection
	if errors.As(err, &r) {
		return r.outcome
	}
	return OutcomeUnavailable
}

// lookup reads the verifier's view from the informers. Once they have
// started it reads their indexers directly: the objects are the informers'
// own, shared and read-only (never modified here), so a request costs no deep
// copy. Before that, or if an informer is not a client-go one, it falls back
// to the cache reader.
type lookup struct {
	cache     client.Reader
	namespace string

	secrets, clients, grants toolscache.Indexer
	// revocations holds the revocation records (ConfigMaps, revoke.go).
	revocations toolscache.Indexer
}

// get returns the indexer's object, or reads it from the cache into a new
// object (fallback).
func get[T client.Object](ctx context.Context, l lookup, idx toolscache.Indexer, ns, name string, fresh func() T) (T, error) {
	var zero T
	if idx == nil {
		out := fresh()
		return out, l.cache.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, out)
	}
	o, ok, err := idx.GetByKey(ns + "/" + name)
	if err != nil {
		return zero, err
	}
	if !ok {
		return zero, apierrors.NewNotFound(schema.GroupResource{}, name)
	}
	t, ok := o.(T)
	if !ok {
		return zero, fmt.Errorf("informer holds %T, not %T", o, zero)
	}
	return t, nil
}

func newSecret() *corev1.Secret                   { return &corev1.Secret{} }
func newClient() *latchkeyv1alpha1.ApiClient      { return &latchkeyv1alpha1.ApiClient{} }
func newGrant() *latchkeyv1alpha1.CredentialGrant { return &latchkeyv1alpha1.CredentialGrant{} }

// token returns the backing token with this id, or a rejection.
func (l lookup) token(ctx context.Context, id string) (backing.Token, error) {
	t, _, err := l.tokenSecret(ctx, id)
	return t, err
}

// tokenSecret is token, returning the informer's object it read as well: a
// *backing.CachedToken (what the caches hold of a readable backing token)
// or a *corev1.Secret.
func (l lookup) tokenSecret(ctx context.Context, id string) (backing.Token, any, error) {
	if l.secrets != nil {
		o, ok, err := l.secrets.GetByKey(l.namespace + "/" + backing.Name(id))
		if err != nil {
			return backing.Token{}, nil, err
		}
		if !ok {
			return backing.Token{}, nil, reject(OutcomeUnknown)
		}
		switch o := o.(type) {
		case *backing.CachedToken:
			return o.Token, o, nil
		case *corev1.Secret: // one FromSecret refused when it was stored
			t, err := backing.FromSecret(o)
			return t, o, err
		}
		return backing.Token{}, nil, fmt.Errorf("informer holds %T, not a backing token", o)
	}
	sec, err := get(ctx, l, nil, l.namespace, backing.Name(id), newSecret)
	if err != nil {
		if apierrors.IsNotFound(err) {
			return backing.Token{}, nil, reject(OutcomeUnknown)
		}
		return backing.Token{}, nil, err
	}
	t, err := backing.FromSecret(sec)
	return t, sec, err
}

// clientSecretTokens returns the backing tokens of a client id's secret
// (several during a rotation's grace period).
func (l lookup) clientSecretTokens(ctx context.Context, clientID string) ([]backing.Token, error) {
	var objs []any
	if l.secrets != nil {
		var err error
		if objs, err = l.secrets.ByIndex(index.Name(IndexClientSecretByClientID), index.Key(l.namespace, clientID)); err != nil {
			return nil, err
		}
	} else {
		var list corev1.SecretList
		if err := l.cache.List(ctx, &list, client.InNamespace(l.namespace), client.MatchingFields{IndexClientSecretByClientID: clientID}); err != nil {
			return nil, err
		}
		for i := range list.Items {
			objs = append(objs, &list.Items[i])
		}
	}
	out := make([]backing.Token, 0, len(objs))
	for _, o := range objs {
		switch o := o.(type) {
		case *backing.CachedToken: // a verifier-only cache's
			out = append(out, o.Token)
		case *corev1.Secret:
			if t, err := backing.FromSecret(o); err == nil {
				out = append(out, t)
			}
		}
	}
	return out, nil
}

// holds checks that the client a backing token belongs to holds the client
// id the token carries: when the id's claim names another client, the
// verifier answers for neither (fail closed). A missing claim (a client not
// reconciled since an upgrade) is not ambiguity: backing tokens are written
// only by the operator, after it claimed the id.
func (l lookup) holds(ctx context.Context, t backing.Token) error {
	_, err := l.holdsClaim(ctx, t)
	return err
}

// holdsClaim is holds, returning the informer's claim object it read
// (*backing.CachedClaim or *corev1.Secret; nil: none).
func (l lookup) holdsClaim(ctx context.Context, t backing.Token) (any, error) {
	// A backing token revoked through /oauth2/revoke is rejected from the
	// moment its record arrives, before the operator deletes it.
	if err := l.revoked(ctx, backing.RevokedToken, t.ID); err != nil {
		return nil, err
	}
	var sec *corev1.Secret
	if l.secrets != nil {
		// The hot path: one indexer lookup, no error built for a miss.
		o, ok, err := l.secrets.GetByKey(backing.ClaimKey(l.namespace, t.ClientID))
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, nil
		}
		if c, isCached := o.(*backing.CachedClaim); isCached {
			if c.Claim.ClientUID != t.ClientUID || c.Claim.ClientID != t.ClientID {
				return nil, reject(OutcomeRevoked)
			}
			return c, nil
		}
		if sec, ok = o.(*corev1.Secret); !ok {
			return nil, fmt.Errorf("informer holds %T, not a Secret", o)
		}
	} else {
		s, err := get(ctx, l, nil, l.namespace, backing.ClaimName(t.ClientID), newSecret)
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		sec = s
	}
	// The name is derived from the id, so the id and holder suffice.
	if sec.Type != backing.ClaimSecretType || sec.Labels[backing.LabelClientUID] != string(t.ClientUID) ||
		sec.Annotations[backing.AnnotationClientID] != t.ClientID {
		return nil, reject(OutcomeRevoked)
	}
	return sec, nil
}

// client returns the ApiClient a backing token belongs to, checking that it
// is the same object (UID) and usable.
func (l lookup) client(ctx context.Context, ns, name string, uid types.UID) (*latchkeyv1alpha1.ApiClient, error) {
	c, err := get(ctx, l, l.clients, ns, name, newClient)
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, reject(OutcomeRevoked)
		}
		return nil, err
	}
	if c.UID != uid || !c.DeletionTimestamp.IsZero() {
		return nil, reject(OutcomeRevoked)
	}
	if !c.IsActive() {
		return nil, reject(OutcomeInactive)
	}
	return c, nil
}

// grant returns the CredentialGrant a backing token belongs to.
func (l lookup) grant(ctx context.Context, t backing.Token, now time.Time) (*latchkeyv1alpha1.CredentialGrant, error) {
	g, err := get(ctx, l, l.grants, t.OwnerNamespace, t.OwnerName, newGrant)
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, reject(OutcomeRevoked)
		}
		return nil, err
	}
	if g.UID != t.OwnerUID || !g.DeletionTimestamp.IsZero() {
		return nil, reject(OutcomeRevoked)
	}
	// The spec may have moved expiresAt earlier than the backing token says.
	if g.Spec.ExpiresAt != nil && !now.Before(g.Spec.ExpiresAt.Time) {
		return nil, reject(OutcomeExpired)
	}
	return g, nil
}

func clientIdentity(c *latchkeyv1alpha1.ApiClient, t backing.Token, typ string) Identity {
	id := Identity{
		Kind: backing.KindApiClient, TokenID: t.ID, ClientID: t.ClientID, Tenant: c.Spec.Tenant,
		Namespace: c.Namespace, Name: c.Name, ClientName: c.Name, Type: typ,
		// Shared with the informer's object: read-only, never modified.
		Scopes: c.Spec.Scopes, Permissions: nonNil(c.Spec.Permissions),
		AllowImpersonate: c.Spec.AllowImpersonate, AllowLogin: c.Spec.AllowLogin,
		IssuedAt: timeOrNil(t.CreatedAt), ExpiresAt: t.ExpiresAt,
		Attributes: c.Spec.Attributes,
		owner:      usageKey{kind: backing.KindApiClient, namespace: c.Namespace, name: c.Name},
	}
	if c.Status.LastUsedAt != nil {
		id.LastUsedAt, id.LastUsedFrom = &c.Status.LastUsedAt.Time, c.Status.LastUsedFrom
	}
	return id
}

func grantIdentity(c *latchkeyv1alpha1.ApiClient, g *latchkeyv1alpha1.CredentialGrant, t backing.Token) Identity {
	id := clientIdentity(c, t, string(g.EffectiveType()))
	id.Kind, id.Name, id.Description = backing.KindCredentialGrant, g.Name, g.Spec.Description
	id.Permissions = permissions.Effective(g.Spec.Permissions, c.Spec.Permissions)
	id.AllowedRequests = g.Spec.AllowedRequests
	id.Attributes = mergeAttributes(c.Spec.Attributes, g.Spec.Attributes)
	id.owner = usageKey{kind: backing.KindCredentialGrant, namespace: g.Namespace, name: g.Name}
	id.LastUsedAt, id.LastUsedFrom = nil, ""
	if g.Status.LastUsedAt != nil {
		id.LastUsedAt, id.LastUsedFrom = &g.Status.LastUsedAt.Time, g.Status.LastUsedFrom
	}
	if g.Spec.ExpiresAt != nil {
		id.ExpiresAt = &g.Spec.ExpiresAt.Time
	}
	return id
}

// Has reports whether the identity holds every permission in want.
func (id Identity) Has(want []string) (missing []string) {
	return permissions.Subset(want, id.Permissions)
}

func (id Identity) permissionList() string { return strings.Join(id.Permissions, ",") }

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
