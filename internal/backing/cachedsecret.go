package backing

import (
	"maps"
	"slices"
	"time"
	"unique"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
)

// CachedSecret is a Secret as Latchkey's caches hold the ones it does not
// own (consumer Secrets in tenant namespaces, after the cache has trimmed
// them): every string the Secret has, in one buffer, each field a 4-byte
// reference into it or into a table of Latchkey's constant strings, and
// its namespace shared with every other object of that namespace. A
// consumer Secret takes ~350 bytes this way, against ~1.7 KB as a
// *corev1.Secret with its maps.
//
// Like CachedToken, it stands for the Secret: DeepCopyObject (what
// controller-runtime's cache hands out from Get and List) returns the
// *corev1.Secret it was made from, equal to it field by field, and the
// metav1.Object getters (what informers, event handlers, predicates, index
// functions and label selectors read) return that Secret's values.
// Setters do nothing: nothing writes to a cached object.
//
// CompactSecret makes one only of a Secret it can render back exactly;
// anything else stays a *corev1.Secret.
type CachedSecret struct {
	// blob holds every string that is not a constant.
	blob string
	ns   unique.Handle[string]
	// created is the creation time in Unix seconds (if flagCreated).
	created int64
	// refs: name, resourceVersion, UID, type; if flagOwner, the controller
	// reference's apiVersion, kind, name and UID; then nLabels, nAnnotations
	// and nData key/value pairs.
	refs                         []uint32
	nLabels, nAnnotations, nData uint16
	flags                        uint16
}

const (
	flagTypeMeta               uint16 = 1 << iota // TypeMeta is v1/Secret (else empty)
	flagCreated                                   // creationTimestamp is set
	flagLabels                                    // labels are a map (else nil)
	flagAnnotations                               // annotations are a map (else nil)
	flagData                                      // data is a map (else nil)
	flagOwner                                     // one owner reference (else nil)
	flagController                                // …with controller set
	flagControllerTrue                            // …to true
	flagBlockOwnerDeletion                        // …with blockOwnerDeletion set
	flagBlockOwnerDeletionTrue                    // …to true
)

// A ref is offset<<16 | length into blob; length refConst says offset is an
// index into cachedConstants.
const (
	refConst = 0xFFFF
	maxBlob  = 0xFFFF
)

// cachedConstants are strings a consumer Secret repeats: kept once per
// process, not once per Secret.
var cachedConstants = []string{
	string(latchkeyv1alpha1.ClientSecretType), string(latchkeyv1alpha1.GrantSecretType),
	latchkeyv1alpha1.LabelManagedBy, latchkeyv1alpha1.ManagedByValue, latchkeyv1alpha1.LabelCreatedBy,
	latchkeyv1alpha1.LabelKind, latchkeyv1alpha1.ApiClientKind, latchkeyv1alpha1.CredentialGrantKind,
	latchkeyv1alpha1.LabelOwnerUID, LabelComponent,
	latchkeyv1alpha1.AnnotationTokenID, latchkeyv1alpha1.AnnotationRotatedFor, latchkeyv1alpha1.AnnotationRotate,
	latchkeyv1alpha1.GroupVersion.String(),
	latchkeyv1alpha1.ClientIDKey, latchkeyv1alpha1.ClientSecretKey, latchkeyv1alpha1.TokenKey,
	latchkeyv1alpha1.TokenIDKey, latchkeyv1alpha1.ExpiresAtKey, latchkeyv1alpha1.KeyIDKey,
	latchkeyv1alpha1.KeySecretKey, latchkeyv1alpha1.UsernameKey, latchkeyv1alpha1.PasswordKey,
}

var cachedConstantIndex = func() map[string]uint32 {
	m := make(map[string]uint32, len(cachedConstants))
	for i, s := range cachedConstants {
		m[s] = uint32(i)
	}
	return m
}()

const (
	refName = iota
	refResourceVersion
	refUID
	refType
	refFixed // the owner reference or the first label
)

// CompactSecret returns s in its compact form, or nil when that cannot
// represent s exactly: a Secret with fields the form does not keep
// (generateName, generation, deletion, finalizers, managedFields,
// immutable, stringData, more than one owner reference, a nil data value,
// a creation time with fractions of a second) or more than 64 KiB of
// strings. s is not modified, and the result shares no memory with it.
func CompactSecret(s *corev1.Secret) *CachedSecret {
	m := &s.ObjectMeta
	if m.GenerateName != "" || m.GetSelfLink() != "" || m.Generation != 0 || m.DeletionTimestamp != nil ||
		m.DeletionGracePeriodSeconds != nil || m.Finalizers != nil || m.ManagedFields != nil ||
		s.Immutable != nil || s.StringData != nil || len(m.OwnerReferences) > 1 || m.OwnerReferences != nil && len(m.OwnerReferences) == 0 ||
		len(m.Labels) > 0xFFFF || len(m.Annotations) > 0xFFFF || len(s.Data) > 0xFFFF {
		return nil
	}
	c := &CachedSecret{ns: unique.Make(m.Namespace), nLabels: uint16(len(m.Labels)),
		nAnnotations: uint16(len(m.Annotations)), nData: uint16(len(s.Data))}
	switch s.TypeMeta {
	case metav1.TypeMeta{}:
	case metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}:
		c.flags |= flagTypeMeta
	default:
		return nil
	}
	if !m.CreationTimestamp.IsZero() {
		c.created = m.CreationTimestamp.Unix()
		if time.Unix(c.created, 0) != m.CreationTimestamp.Time { // also its location
			return nil
		}
		c.flags |= flagCreated
	}
	b := blobBuilder{refs: make([]uint32, 0, refFixed+4+2*(len(m.Labels)+len(m.Annotations)+len(s.Data)))}
	b.add(m.Name)
	b.add(m.ResourceVersion)
	b.add(string(m.UID))
	b.add(string(s.Type))
	if len(m.OwnerReferences) == 1 {
		r := &m.OwnerReferences[0]
		c.flags |= flagOwner
		if r.Controller != nil {
			c.flags |= flagController
			if *r.Controller {
				c.flags |= flagControllerTrue
			}
		}
		if r.BlockOwnerDeletion != nil {
			c.flags |= flagBlockOwnerDeletion
			if *r.BlockOwnerDeletion {
				c.flags |= flagBlockOwnerDeletionTrue
			}
		}
		b.add(r.APIVersion)
		b.add(r.Kind)
		b.add(r.Name)
		b.add(string(r.UID))
	}
	if m.Labels != nil {
		c.flags |= flagLabels
		b.addMap(m.Labels)
	}
	if m.Annotations != nil {
		c.flags |= flagAnnotations
		b.addMap(m.Annotations)
	}
	if s.Data != nil {
		c.flags |= flagData
		for _, k := range slices.Sorted(maps.Keys(s.Data)) {
			v := s.Data[k]
			if v == nil {
				return nil // renders as []byte{}
			}
			b.add(k)
			b.add(string(v))
		}
	}
	if b.failed || len(b.buf) > maxBlob {
		return nil
	}
	c.blob, c.refs = string(b.buf), b.refs
	return c
}

// blobBuilder appends strings to one buffer, reusing a constant or a copy
// already in the buffer (an owner's UID is also a label value; a grant's
// token id is in its annotation, its data and its token).
type blobBuilder struct {
	buf    []byte
	refs   []uint32
	failed bool
}

// dedupLimit bounds the buffer searched for a copy.
const dedupLimit = 4 << 10

func (b *blobBuilder) add(s string) {
	switch i, ok := cachedConstantIndex[s]; {
	case s == "":
		b.refs = append(b.refs, 0)
		return
	case ok:
		b.refs = append(b.refs, i<<16|refConst)
		return
	case len(s) >= refConst:
		b.failed = true
		b.refs = append(b.refs, 0)
		return
	}
	off := -1
	if len(s) >= 8 && len(b.buf) <= dedupLimit {
		off = indexBytes(b.buf, s)
	}
	if off < 0 {
		off = len(b.buf)
		b.buf = append(b.buf, s...)
	}
	if off+len(s) > maxBlob {
		b.failed = true
	}
	b.refs = append(b.refs, uint32(off)<<16|uint32(len(s)))
}

func (b *blobBuilder) addMap(m map[string]string) {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		b.add(k)
		b.add(m[k])
	}
}

func indexBytes(buf []byte, s string) int {
	for i := 0; i+len(s) <= len(buf); i++ {
		if string(buf[i:i+len(s)]) == s {
			return i
		}
	}
	return -1
}

func (c *CachedSecret) str(r uint32) string {
	off, n := r>>16, r&0xFFFF
	if n == refConst {
		return cachedConstants[off]
	}
	return c.blob[off : off+n]
}

// pairs returns the refs of the label (0), annotation (1) or data (2)
// pairs.
func (c *CachedSecret) pairs(which int) []uint32 {
	start := refFixed
	if c.flags&flagOwner != 0 {
		start += 4
	}
	n := [3]int{int(c.nLabels), int(c.nAnnotations), int(c.nData)}
	for i := range which {
		start += 2 * n[i]
	}
	return c.refs[start : start+2*n[which]]
}

func (c *CachedSecret) stringMap(which int, set uint16) map[string]string {
	if c.flags&set == 0 {
		return nil
	}
	p := c.pairs(which)
	m := make(map[string]string, len(p)/2)
	for i := 0; i < len(p); i += 2 {
		m[c.str(p[i])] = c.str(p[i+1])
	}
	return m
}

func (c *CachedSecret) lookup(which int, key string) string {
	p := c.pairs(which)
	for i := 0; i < len(p); i += 2 {
		if c.str(p[i]) == key {
			return c.str(p[i+1])
		}
	}
	return ""
}

// Label returns the value of the label key ("" when absent) without
// rendering the labels.
func (c *CachedSecret) Label(key string) string { return c.lookup(0, key) }

// Annotation returns the value of the annotation key ("" when absent)
// without rendering the annotations.
func (c *CachedSecret) Annotation(key string) string { return c.lookup(1, key) }

// Type is the Secret's type.
func (c *CachedSecret) Type() corev1.SecretType { return corev1.SecretType(c.str(c.refs[refType])) }

// Secret renders the Secret c stands for: a new object, sharing no memory
// with c or with any other rendering.
func (c *CachedSecret) Secret() *corev1.Secret {
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: c.GetName(), Namespace: c.GetNamespace(), UID: c.GetUID(),
			ResourceVersion: c.GetResourceVersion(), CreationTimestamp: c.GetCreationTimestamp(),
			Labels: c.GetLabels(), Annotations: c.GetAnnotations(), OwnerReferences: c.GetOwnerReferences()},
		Type: c.Type(),
	}
	if c.flags&flagTypeMeta != 0 {
		s.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}
	}
	if c.flags&flagData != 0 {
		p := c.pairs(2)
		s.Data = make(map[string][]byte, len(p)/2)
		for i := 0; i < len(p); i += 2 {
			s.Data[c.str(p[i])] = []byte(c.str(p[i+1]))
		}
	}
	return s
}

var (
	_ metav1.Object  = (*CachedSecret)(nil)
	_ runtime.Object = (*CachedSecret)(nil)
)

// GetObjectKind implements runtime.Object (see CachedToken).
func (*CachedSecret) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

// DeepCopyObject returns the Secret c stands for (see CachedSecret).
func (c *CachedSecret) DeepCopyObject() runtime.Object { return c.Secret() }

func (c *CachedSecret) GetNamespace() string         { return c.ns.Value() }
func (c *CachedSecret) GetName() string              { return c.str(c.refs[refName]) }
func (c *CachedSecret) GetResourceVersion() string   { return c.str(c.refs[refResourceVersion]) }
func (c *CachedSecret) GetUID() types.UID            { return types.UID(c.str(c.refs[refUID])) }
func (c *CachedSecret) GetLabels() map[string]string { return c.stringMap(0, flagLabels) }
func (c *CachedSecret) GetAnnotations() map[string]string {
	return c.stringMap(1, flagAnnotations)
}

func (c *CachedSecret) GetCreationTimestamp() metav1.Time {
	if c.flags&flagCreated == 0 {
		return metav1.Time{}
	}
	return metav1.NewTime(time.Unix(c.created, 0))
}

func (c *CachedSecret) GetOwnerReferences() []metav1.OwnerReference {
	if c.flags&flagOwner == 0 {
		return nil
	}
	r := metav1.OwnerReference{APIVersion: c.str(c.refs[refFixed]), Kind: c.str(c.refs[refFixed+1]),
		Name: c.str(c.refs[refFixed+2]), UID: types.UID(c.str(c.refs[refFixed+3]))}
	if c.flags&flagController != 0 {
		v := c.flags&flagControllerTrue != 0
		r.Controller = &v
	}
	if c.flags&flagBlockOwnerDeletion != 0 {
		v := c.flags&flagBlockOwnerDeletionTrue != 0
		r.BlockOwnerDeletion = &v
	}
	return []metav1.OwnerReference{r}
}

func (*CachedSecret) SetNamespace(string)                           {}
func (*CachedSecret) SetName(string)                                {}
func (*CachedSecret) SetResourceVersion(string)                     {}
func (*CachedSecret) SetUID(types.UID)                              {}
func (*CachedSecret) SetLabels(map[string]string)                   {}
func (*CachedSecret) SetAnnotations(map[string]string)              {}
func (*CachedSecret) SetCreationTimestamp(metav1.Time)              {}
func (*CachedSecret) SetOwnerReferences([]metav1.OwnerReference)    {}
func (*CachedSecret) GetGenerateName() string                       { return "" }
func (*CachedSecret) SetGenerateName(string)                        {}
func (*CachedSecret) GetGeneration() int64                          { return 0 }
func (*CachedSecret) SetGeneration(int64)                           {}
func (*CachedSecret) GetSelfLink() string                           { return "" }
func (*CachedSecret) SetSelfLink(string)                            {}
func (*CachedSecret) GetDeletionTimestamp() *metav1.Time            { return nil }
func (*CachedSecret) SetDeletionTimestamp(*metav1.Time)             {}
func (*CachedSecret) GetDeletionGracePeriodSeconds() *int64         { return nil }
func (*CachedSecret) SetDeletionGracePeriodSeconds(*int64)          {}
func (*CachedSecret) GetFinalizers() []string                       { return nil }
func (*CachedSecret) SetFinalizers([]string)                        {}
func (*CachedSecret) GetManagedFields() []metav1.ManagedFieldsEntry { return nil }
func (*CachedSecret) SetManagedFields([]metav1.ManagedFieldsEntry)  {}
