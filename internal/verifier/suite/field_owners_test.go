package suite_test

import (
	"encoding/json"
	"net/http"
	"sort"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
)

// statusFieldsOf returns, per field manager, the top-level status fields it
// owns (from managedFields), and whether each wrote with Apply.
func statusFieldsOf(t *testing.T, obj client.Object) (map[string][]string, map[string]bool) {
	t.Helper()
	owners, applied := map[string][]string{}, map[string]bool{}
	for _, mf := range obj.GetManagedFields() {
		if mf.FieldsV1 == nil {
			continue
		}
		var fields map[string]any
		if err := json.Unmarshal(mf.FieldsV1.GetRawBytes(), &fields); err != nil {
			t.Fatal(err)
		}
		status, _ := fields["f:status"].(map[string]any)
		for k := range status {
			owners[mf.Manager] = append(owners[mf.Manager], k)
		}
		sort.Strings(owners[mf.Manager])
		if len(status) > 0 {
			applied[mf.Manager] = mf.Operation == metav1.ManagedFieldsOperationApply && mf.Subresource == "status"
		}
	}
	return owners, applied
}

// The controller and the verifier's usage writer own their status fields
// through separate server-side-apply field managers, as the API server
// records them: latchkey-controller owns the conditions, ids and times it
// computes and not the usage fields; latchkey-usage owns lastUsedAt and
// lastUsedFrom and nothing else. A write of either leaves the other's
// fields as they were.
func TestStatusFieldOwners(t *testing.T) {
	f := newFixture(t)
	f.create(&latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: "c"},
		Spec: latchkeyv1alpha1.ApiClientSpec{Scopes: []string{"blogs"}, Permissions: []string{"blogs.read"}, Tenant: "2"}})
	grant := &latchkeyv1alpha1.CredentialGrant{ObjectMeta: metav1.ObjectMeta{Name: "t"}, Spec: latchkeyv1alpha1.CredentialGrantSpec{ClientName: "c"}}
	f.create(grant)
	f.waitReady(grant)
	tok := f.secret("t")[latchkeyv1alpha1.TokenKey]

	get := func() *latchkeyv1alpha1.CredentialGrant {
		g := &latchkeyv1alpha1.CredentialGrant{}
		f.g.Expect(env.Client.Get(f.ctx, client.ObjectKeyFromObject(grant), g)).To(Succeed())
		return g
	}
	used := func(after *metav1.Time) *latchkeyv1alpha1.CredentialGrant {
		f.t.Helper()
		var g *latchkeyv1alpha1.CredentialGrant
		f.g.Eventually(func(gm Gomega) {
			gm.Expect(f.verify(bearer(tok), "")).To(Equal(http.StatusOK))
			g = get()
			gm.Expect(g.Status.LastUsedAt).NotTo(BeNil())
			if after != nil {
				gm.Expect(g.Status.LastUsedAt.After(after.Time)).To(BeTrue(), "a later use recorded")
			}
		}).Should(Succeed())
		return g
	}

	g := used(nil)
	owners, applied := statusFieldsOf(t, g)
	f.g.Expect(owners).To(HaveKeyWithValue("latchkey-usage", []string{"f:lastUsedAt", "f:lastUsedFrom"}))
	f.g.Expect(owners).To(HaveKey("latchkey-controller"))
	f.g.Expect(owners["latchkey-controller"]).To(ContainElements("f:conditions", "f:tokenID", "f:secretName", "f:observedGeneration"))
	f.g.Expect(owners["latchkey-controller"]).NotTo(ContainElement("f:lastUsedAt"))
	f.g.Expect(owners["latchkey-controller"]).NotTo(ContainElement("f:lastUsedFrom"))
	f.g.Expect(owners).To(HaveLen(2), "no other manager owns a status field: %v", owners)
	f.g.Expect(applied).To(Equal(map[string]bool{"latchkey-controller": true, "latchkey-usage": true}), "both write status with server-side apply")

	// A usage write in a later second leaves the controller's fields alone.
	before := g.Status.DeepCopy()
	time.Sleep(1100 * time.Millisecond)
	g = used(before.LastUsedAt)
	f.g.Expect(g.Status.Conditions).To(Equal(before.Conditions), "a usage write changed the conditions")
	f.g.Expect(g.Status.TokenID).To(Equal(before.TokenID))
	f.g.Expect(g.Status.IssuedAt).To(Equal(before.IssuedAt))

	// A controller write (the client deactivated: the grant is no longer
	// Ready) leaves the usage fields alone.
	lastUse, staleRV := g.Status.UsageStatus, g.ResourceVersion
	c := &latchkeyv1alpha1.ApiClient{}
	f.g.Expect(env.Client.Get(f.ctx, clientKey(f.ns, "c"), c)).To(Succeed())
	orig := c.DeepCopy()
	c.Spec.Active = new(bool)
	f.g.Expect(env.Client.Patch(f.ctx, c, client.MergeFrom(orig))).To(Succeed())
	f.g.Eventually(func(gm Gomega) {
		g = get()
		ready := meta.FindStatusCondition(g.Status.Conditions, latchkeyv1alpha1.ConditionReady)
		gm.Expect(ready).NotTo(BeNil())
		gm.Expect(ready.Reason).To(Equal(latchkeyv1alpha1.ReasonClientInactive))
	}).Should(Succeed())
	f.g.Expect(g.Status.UsageStatus).To(Equal(lastUse), "a controller write changed the usage fields")
	owners, _ = statusFieldsOf(t, g)
	f.g.Expect(owners).To(HaveKeyWithValue("latchkey-usage", []string{"f:lastUsedAt", "f:lastUsedFrom"}))
	f.g.Expect(owners["latchkey-controller"]).NotTo(ContainElement("f:lastUsedAt"), "the controller took the usage fields over")
	f.g.Expect(owners["latchkey-controller"]).NotTo(ContainElement("f:lastUsedFrom"), "the controller took the usage fields over")

	// The usage writer's optimistic lock holds with apply: a write on a
	// stale resourceVersion is a conflict, never an overwrite.
	stale := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": latchkeyv1alpha1.GroupVersion.String(), "kind": latchkeyv1alpha1.CredentialGrantKind,
		"metadata": map[string]any{"namespace": f.ns, "name": "t", "resourceVersion": staleRV},
		"status":   map[string]any{"lastUsedAt": "2000-01-01T00:00:00Z", "lastUsedFrom": "stale"},
	}}
	err := env.Client.Status().Apply(f.ctx, client.ApplyConfigurationFromUnstructured(stale), client.FieldOwner("latchkey-usage"), client.ForceOwnership)
	f.g.Expect(apierrors.IsConflict(err)).To(BeTrue(), "apply on a stale resourceVersion: %v", err)
	f.g.Expect(get().Status.UsageStatus).To(Equal(lastUse))
}
