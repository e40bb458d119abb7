package operator

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/backing"
	"github.com/latchkey-dev/latchkey/internal/heartbeat"
	"github.com/latchkey-dev/latchkey/internal/servingcert"
	"github.com/latchkey-dev/latchkey/internal/webhook/certs"
)

// The Secret informer selects by the label app.kubernetes.io/managed-by=
// latchkey, which anyone who can write a Secret can put on it. What the cache
// keeps of a Secret is therefore bounded by what Latchkey needs of it, not by
// what its author wrote:
//
//   - Secrets Latchkey owns, in its own namespaces (the operator namespace
//     and the token namespace, which tenants cannot write): backing tokens,
//     client-id claims, the access-token signing keys, the heartbeat, the
//     verifier's serving certificate and CA, the webhook certificate. Kept
//     whole (managedFields aside).
//   - Consumer Secrets (types latchkey.dev/client and latchkey.dev/token),
//     anywhere: the data keys Latchkey writes, each value of at most
//     cacheMaxValue bytes (a longer one is replaced by elidedValue, which no
//     issued value can equal: the controller sees tampering, confirms with
//     the API server, and reissues, which is right for a value Latchkey never
//     wrote); any other key is kept with an empty value, at most
//     cacheMaxExtraKeys of them, because one extra key already makes the
//     tamper check fail (then confirmed uncached).
//   - Any other Secret carrying the label: no data at all.
//
// Metadata of every Secret that is not Latchkey's own is bounded too (see
// trimMeta): labels and annotations within a byte budget, only the
// controller owner reference, no finalizers.
//
// A consumer Secret outside Latchkey's own namespaces is then held compact
// (backing.CachedSecret, see compactConsumer): the trimmed Secret's strings
// in one buffer, ~360 bytes where the trimmed *corev1.Secret takes ~2 KB.
// It renders back as exactly that trimmed Secret (a cache Get or List
// returns it; the metav1.Object getters that informers, event handlers,
// index functions and label selectors read return its values). A Secret it
// cannot represent exactly (being deleted, a finalizer, a generation, over
// 64 KiB of strings, ...) stays the trimmed *corev1.Secret.
const (
	// cacheMaxValue bounds a kept data value of a consumer Secret. Every value
	// Latchkey generates is under 100 bytes; a user-chosen client secret
	// (spec.clientSecretRef) longer than this is still issued and kept, at
	// the price of an uncached read on each reconcile.
	cacheMaxValue = 1 << 10
	// cacheMaxExtraKeys bounds the keys Latchkey does not write that are
	// kept (empty) in a consumer Secret.
	cacheMaxExtraKeys = 4
	// cacheMaxAnnotation bounds one kept annotation value, and
	// cacheAnnotationBudget / cacheLabelBudget the bytes (keys and values)
	// of the annotations / labels kept on one Secret.
	cacheMaxAnnotation    = 4 << 10
	cacheAnnotationBudget = 16 << 10
	cacheLabelBudget      = 16 << 10
)

// elidedValue replaces a data value longer than cacheMaxValue. It is random
// per process, so no value anyone chooses (a user-chosen client secret) can
// be equal to it; it is shorter than cacheMaxValue, so the transform stays
// idempotent.
var elidedValue = func() []byte {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return []byte("latchkey.dev/elided-" + hex.EncodeToString(b))
}()

// consumerKeys are the data keys Latchkey writes into consumer Secrets.
var consumerKeys = map[string]bool{
	latchkeyv1alpha1.ClientIDKey: true, latchkeyv1alpha1.ClientSecretKey: true,
	latchkeyv1alpha1.TokenKey: true, latchkeyv1alpha1.TokenIDKey: true, latchkeyv1alpha1.ExpiresAtKey: true,
	latchkeyv1alpha1.KeyIDKey: true, latchkeyv1alpha1.KeySecretKey: true,
	latchkeyv1alpha1.UsernameKey: true, latchkeyv1alpha1.PasswordKey: true,
}

// ownSecretTypes are the types of the Secrets Latchkey writes in its own
// namespaces.
var ownSecretTypes = map[corev1.SecretType]bool{
	backing.SecretType:            true,
	backing.ClaimSecretType:       true,
	backing.SigningKeysSecretType: true,
	heartbeat.SecretType:          true,
}

// ownedSecrets says which Secrets Latchkey owns: by type or by name, and only
// in its own namespaces.
type ownedSecrets struct {
	namespaces map[string]bool
	// names of Latchkey's Secrets of general types (kubernetes.io/tls,
	// Opaque), by namespace.
	names map[string]map[string]bool
}

func newOwnedSecrets(opts Options) ownedSecrets {
	ns := opts.Namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	tokens := opts.TokenNamespace
	if tokens == "" {
		tokens = ns
	}
	o := ownedSecrets{namespaces: map[string]bool{ns: true, tokens: true}, names: map[string]map[string]bool{ns: {}, tokens: {}}}
	webhookCert := opts.WebhookCertSecretName
	if webhookCert == "" {
		webhookCert = certs.DefaultSecretName
	}
	o.names[ns][webhookCert] = true
	o.names[ns][servingcert.DefaultCASecretName] = true
	if opts.Verifier.TLSSecret != "" {
		o.names[tokens][opts.Verifier.TLSSecret] = true
	}
	return o
}

// intern returns Latchkey's own namespace string equal to ns, so every
// compact object shares it.
func (o ownedSecrets) intern(ns string) string {
	for k := range o.namespaces {
		if k == ns {
			return k
		}
	}
	return ns
}

func (o ownedSecrets) owns(s *corev1.Secret) bool {
	return o.namespaces[s.Namespace] && (ownSecretTypes[s.Type] || o.names[s.Namespace][s.Name])
}

// secretTransform strips managedFields (as DefaultTransform does for every
// other kind) and trims what Latchkey does not own. It mutates the object it
// is given, before the informer stores it, and is idempotent.
//
// It stores Latchkey's backing tokens and client-id claims in their compact
// form (backing.Cached): parsed once, without the Secret's maps. The
// verifier reads the records (identity.go); every cache reader asking for a
// Secret gets the Secret they stand for (see backing.CachedToken).
func secretTransform(opts Options) toolscache.TransformFunc {
	owned := newOwnedSecrets(opts)
	strip := cache.TransformStripManagedFields()
	return func(in any) (any, error) {
		switch in.(type) {
		case *backing.CachedToken, *backing.CachedClaim, *backing.CachedSecret:
			return in, nil // already transformed (a resync)
		}
		out, err := strip(in)
		if err != nil {
			return out, err
		}
		s, ok := out.(*corev1.Secret)
		switch {
		case !ok:
		case !owned.owns(s):
			trimSecret(s)
			if compactConsumer(owned, s) {
				if c := backing.CompactSecret(s); c != nil {
					return c, nil
				}
			}
		default:
			s.Namespace = owned.intern(s.Namespace) // one string for every record
			if c := backing.Cached(s); c != nil {
				return c, nil
			}
		}
		return out, nil
	}
}

// compactConsumer says whether the cache holds the (trimmed) Secret s in
// its compact form, backing.CachedSecret: consumer Secrets outside
// Latchkey's own namespaces. There the verifier reads only its own Secrets
// from the informer, by key and by index, and finds a consumer Secret
// exactly as before (a *corev1.Secret it refuses), and the controllers'
// backing-token index reads only the operator namespace.
func compactConsumer(owned ownedSecrets, s *corev1.Secret) bool {
	return (s.Type == latchkeyv1alpha1.ClientSecretType || s.Type == latchkeyv1alpha1.GrantSecretType) && !owned.namespaces[s.Namespace]
}

// trimSecret reduces a Secret Latchkey does not own to what the controllers
// read of it.
func trimSecret(s *corev1.Secret) {
	switch s.Type {
	case latchkeyv1alpha1.ClientSecretType, latchkeyv1alpha1.GrantSecretType:
		s.Data = trimConsumerData(s.Data)
	default:
		s.Data = nil
	}
	s.StringData = nil
	trimMeta(&s.ObjectMeta)
}

// trimConsumerData keeps Latchkey's keys with values of at most
// cacheMaxValue bytes (copied, so no larger buffer stays reachable) and at
// most cacheMaxExtraKeys other keys, empty. It builds a new map: a map does
// not shrink when keys are deleted.
func trimConsumerData(data map[string][]byte) map[string][]byte {
	if data == nil {
		return nil
	}
	out := make(map[string][]byte, min(len(data), len(consumerKeys)+cacheMaxExtraKeys))
	var extra []string
	for k, v := range data {
		switch {
		case !consumerKeys[k]:
			extra = append(extra, k)
		case len(v) > cacheMaxValue:
			out[k] = elidedValue
		default:
			out[k] = bytes.Clone(v)
		}
	}
	// The shortest extra keys, in a fixed order: the same ones on every
	// pass, so the transform is idempotent.
	slices.SortFunc(extra, func(a, b string) int {
		if len(a) != len(b) {
			return len(a) - len(b)
		}
		return strings.Compare(a, b)
	})
	for _, k := range extra[:min(len(extra), cacheMaxExtraKeys)] {
		out[k] = []byte{}
	}
	return out
}

// trimMeta bounds the metadata of a Secret Latchkey does not own.
//
// Labels and annotations: Latchkey's own keys (latchkey.dev/… and
// app.kubernetes.io/managed-by, …/component) first, then the others in key
// order, each kept while the total stays within the budget; an annotation
// value longer than cacheMaxAnnotation is never kept. What a controller
// compares is thereby kept in every case that matters:
//
//   - latchkey.dev/token-id is a generated id; latchkey.dev/rotated-for
//     echoes the object's latchkey.dev/rotate value. If that value were
//     longer than cacheMaxAnnotation, the cache would show it missing, the
//     controller would see a rotation request, confirm it against the API
//     server (decideConfirmed) and find none: one uncached read per
//     reconcile, never a reissue.
//   - secretTemplate labels are at most 64 of at most 63-byte values;
//     secretTemplate annotations are compared by consumerSecretSpec.upToDate,
//     so one longer than cacheMaxAnnotation (or beyond the budget) makes
//     every reconcile of that object re-apply its Secret: a server-side
//     apply of unchanged content, which changes nothing and triggers no
//     event. Templates that size are not what annotations are for; the
//     bound is what makes a tenant's kubectl.kubernetes.io/last-applied-
//     configuration (a copy of the whole Secret) cost nothing.
//
// Owner references: only the controller reference (IsControlledBy is all
// that is read). Finalizers: none (nothing reads them, nothing updates these
// Secrets from the cache).
func trimMeta(m *metav1.ObjectMeta) {
	m.Labels = trimStrings(m.Labels, cacheLabelBudget, 0)
	m.Annotations = trimStrings(m.Annotations, cacheAnnotationBudget, cacheMaxAnnotation)
	if len(m.OwnerReferences) > 0 {
		var refs []metav1.OwnerReference
		for _, r := range m.OwnerReferences {
			if r.Controller != nil && *r.Controller {
				refs = []metav1.OwnerReference{r}
				break
			}
		}
		m.OwnerReferences = refs
	}
	m.Finalizers = nil
}

// trimStrings keeps entries of in, Latchkey's keys first and then in key
// order, while the sum of key and value lengths stays within budget; values
// longer than maxValue (when positive) are dropped.
func trimStrings(in map[string]string, budget, maxValue int) map[string]string {
	if len(in) == 0 {
		return in
	}
	keys := make([]string, 0, len(in))
	for k := range in {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if oa, ob := latchkeyKey(a), latchkeyKey(b); oa != ob {
			if oa {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	out := map[string]string{}
	used := 0
	for _, k := range keys {
		v := in[k]
		if maxValue > 0 && len(v) > maxValue || used+len(k)+len(v) > budget {
			continue
		}
		used += len(k) + len(v)
		out[k] = v
	}
	return out
}

func latchkeyKey(k string) bool {
	return strings.HasPrefix(k, "latchkey.dev/") || k == latchkeyv1alpha1.LabelManagedBy || k == backing.LabelComponent
}

// A verifier-only process reads of an ApiClient or a CredentialGrant only
// what a verification answers from (internal/verifier: identity.go,
// usage.go): the keys and identity of the object, the spec fields of an
// identity and its checks, and lastUsedAt/From. Its cache keeps nothing
// else: no conditions, labels, annotations (kubectl's last-applied
// configuration is a copy of the whole object), finalizers or the fields
// only the controllers read. A full manager keeps the objects whole.
func verifierMeta(m *metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion,
		Generation: m.Generation, CreationTimestamp: m.CreationTimestamp, DeletionTimestamp: m.DeletionTimestamp}
}

func verifierClientTransform(in any) (any, error) {
	c, ok := in.(*latchkeyv1alpha1.ApiClient)
	if !ok {
		return in, nil
	}
	return &latchkeyv1alpha1.ApiClient{ObjectMeta: verifierMeta(&c.ObjectMeta),
		Spec: latchkeyv1alpha1.ApiClientSpec{Scopes: c.Spec.Scopes, Permissions: c.Spec.Permissions, Tenant: c.Spec.Tenant,
			Active: c.Spec.Active, AllowImpersonate: c.Spec.AllowImpersonate, AllowLogin: c.Spec.AllowLogin, Attributes: c.Spec.Attributes},
		Status: latchkeyv1alpha1.ApiClientStatus{UsageStatus: c.Status.UsageStatus}}, nil
}

func verifierGrantTransform(in any) (any, error) {
	g, ok := in.(*latchkeyv1alpha1.CredentialGrant)
	if !ok {
		return in, nil
	}
	return &latchkeyv1alpha1.CredentialGrant{ObjectMeta: verifierMeta(&g.ObjectMeta),
		Spec: latchkeyv1alpha1.CredentialGrantSpec{ClientName: g.Spec.ClientName, Permissions: g.Spec.Permissions,
			ExpiresAt: g.Spec.ExpiresAt, Description: g.Spec.Description, Type: g.Spec.Type,
			AllowedRequests: g.Spec.AllowedRequests, Attributes: g.Spec.Attributes},
		Status: latchkeyv1alpha1.CredentialGrantStatus{UsageStatus: g.Status.UsageStatus}}, nil
}
