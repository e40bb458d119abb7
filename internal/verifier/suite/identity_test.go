package suite_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/backing"
	"github.com/latchkey-dev/latchkey/internal/controller"
	"github.com/latchkey-dev/latchkey/internal/operator"
)

// Security I, acceptance 1: editing a consumer Secret's client_id to another
// live client's id (in another namespace), with and without also editing
// client_secret, never makes the victim's id appear in a backing token, a
// verifier answer or an introspection result; the edited Secret is reissued
// under its own recorded id, and an Event says it was tampered with.
func TestClientIDTakeoverThroughConsumerSecret(t *testing.T) {
	victimNs := env.Namespace(t)
	f := newFixture(t, func(o *operator.Options) { o.WatchNamespaces = append(o.WatchNamespaces, victimNs) })

	victim := &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: "sysadmin", Namespace: victimNs}, Spec: latchkeyv1alpha1.ApiClientSpec{
		Scopes: []string{"system"}, Permissions: []string{"system.organizations.update", "system.introspect"}, ClientID: "sysadmin-org-" + victimNs}}
	f.g.Expect(env.Client.Create(f.ctx, victim)).To(Succeed())
	f.waitReady(victim)
	victimID := victim.Status.ClientID
	vs := &corev1.Secret{}
	f.g.Expect(env.Client.Get(f.ctx, types.NamespacedName{Namespace: victimNs, Name: "sysadmin"}, vs)).To(Succeed())
	victimSecret := string(vs.Data["client_secret"])

	for _, tc := range []struct {
		name       string
		editSecret bool
	}{{"client_id only", false}, {"client_id and client_secret", true}} {
		t.Run(tc.name, func(t *testing.T) {
			f := f.sub(t)
			name := map[bool]string{false: "mallory-a", true: "mallory-b"}[tc.editSecret]
			m := &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: latchkeyv1alpha1.ApiClientSpec{
				Scopes: []string{"blogs"}, Permissions: []string{"blogs.read"}, Tenant: "2"}}
			f.create(m)
			f.waitReady(m)
			g := grant(name+"-token", name, latchkeyv1alpha1.CredentialTypeBearer)
			f.create(g)
			f.waitReady(g)
			ownID, oldTokenID := m.Status.ClientID, m.Status.TokenID

			// The attack: point the Secret at the victim's id.
			sec := &corev1.Secret{}
			f.g.Expect(env.Client.Get(f.ctx, types.NamespacedName{Namespace: f.ns, Name: name}, sec)).To(Succeed())
			sec.Data["client_id"] = []byte(victimID)
			attackerSecret := "attacker-chosen-secret-0123456789"
			if tc.editSecret {
				sec.Data["client_secret"] = []byte(attackerSecret)
			}
			f.g.Expect(env.Client.Update(f.ctx, sec)).To(Succeed())

			// Reissued under its own recorded id.
			f.g.Eventually(func(g Gomega) {
				g.Expect(env.Client.Get(f.ctx, client.ObjectKeyFromObject(m), m)).To(Succeed())
				g.Expect(m.Status.TokenID).NotTo(Equal(oldTokenID))
				s := f.secret(name)
				g.Expect(s["client_id"]).To(Equal(ownID))
				g.Expect(meta.IsStatusConditionTrue(m.Status.Conditions, latchkeyv1alpha1.ConditionReady)).To(BeTrue())
			}).Should(Succeed())
			f.g.Expect(m.Status.ClientID).To(Equal(ownID))
			f.g.Eventually(func() []string { return eventReasonsIn(f, f.ns, name) }).Should(ContainElement(controller.EventTampered))

			// No backing token but the victim's own carries the victim's id.
			var list corev1.SecretList
			f.g.Expect(env.Client.List(f.ctx, &list, client.InNamespace(f.opNs))).To(Succeed())
			for i := range list.Items {
				if list.Items[i].Type != backing.SecretType {
					continue
				}
				bt, err := backing.FromSecret(&list.Items[i])
				f.g.Expect(err).NotTo(HaveOccurred())
				if bt.ClientID == victimID {
					f.g.Expect(bt.ClientUID).To(Equal(victim.UID), "backing token %s carries the victim's id", bt.ID)
				} else {
					f.g.Expect(bt.ClientUID).NotTo(Equal(victim.UID))
				}
			}

			// The verifier: the attacker's credentials answer with its own id
			// only; the victim's id with the attacker's secret is refused.
			own := f.secret(name)
			for _, h := range []http.Header{basic(own["client_id"], own["client_secret"]), bearer(f.secret(name + "-token")["token"])} {
				resp := f.get("/v1/verify", h)
				_ = resp.Body.Close()
				f.g.Expect(resp.StatusCode).To(Equal(200))
				f.g.Expect(resp.Header.Get("X-Latchkey-Client-Id")).To(Equal(ownID))
			}
			f.g.Expect(f.verify(basic(victimID, attackerSecret), "")).To(Equal(401))
			f.g.Expect(f.verify(basic(victimID, own["client_secret"]), "")).To(Equal(401))
			code, body := f.postForm("/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, basic(victimID, own["client_secret"]))
			f.g.Expect(code).To(Equal(401), "%v", body)

			// Introspection (by the victim, who may introspect) names the
			// attacker's own id for the attacker's token.
			code, body = f.postForm("/oauth2/introspect", url.Values{"token": {f.secret(name + "-token")["token"]}}, basic(victimID, victimSecret))
			f.g.Expect(code).To(Equal(200))
			f.g.Expect(body).To(HaveKeyWithValue("client_id", ownID))
			f.g.Expect(body).To(HaveKeyWithValue("sub", ownID))
		})
	}
	// The victim is untouched.
	f.g.Expect(f.verify(basic(victimID, victimSecret), "")).To(Equal(200))
}

// Security I, acceptance 2: two ApiClients racing for one fixed
// spec.clientID with the webhook off: exactly one holds it, the other is
// Ready=False/ClientIDConflict with no backing token; deleting the holder
// lets the other take the id.
func TestClientIDRace(t *testing.T) {
	otherNs := env.Namespace(t)
	f := newFixture(t, func(o *operator.Options) { o.WatchNamespaces = append(o.WatchNamespaces, otherNs) })
	id := "shared-id-" + f.ns
	mk := func(ns string) *latchkeyv1alpha1.ApiClient {
		return &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: "racer", Namespace: ns}, Spec: latchkeyv1alpha1.ApiClientSpec{
			Scopes: []string{"system"}, Permissions: []string{"system.read"}, ClientID: id}}
	}
	a, b := mk(f.ns), mk(otherNs)
	done := make(chan error, 2)
	for _, c := range []*latchkeyv1alpha1.ApiClient{a, b} {
		go func() { done <- env.Client.Create(f.ctx, c) }()
	}
	f.g.Expect(<-done).To(Succeed())
	f.g.Expect(<-done).To(Succeed())

	var holder, loser *latchkeyv1alpha1.ApiClient
	f.g.Eventually(func(g Gomega) {
		ready, conflict := 0, 0
		for _, c := range []*latchkeyv1alpha1.ApiClient{a, b} {
			g.Expect(env.Client.Get(f.ctx, client.ObjectKeyFromObject(c), c)).To(Succeed())
			cond := meta.FindStatusCondition(c.Status.Conditions, latchkeyv1alpha1.ConditionReady)
			g.Expect(cond).NotTo(BeNil())
			switch {
			case cond.Status == metav1.ConditionTrue:
				ready++
				holder = c
			case cond.Reason == latchkeyv1alpha1.ReasonClientIDConflict:
				conflict++
				loser = c
				g.Expect(cond.Message).To(ContainSubstring("spec.clientID"), "the message says what to do")
			}
		}
		g.Expect([]int{ready, conflict}).To(Equal([]int{1, 1}))
	}).Should(Succeed())
	f.g.Expect(holder.Status.ClientID).To(Equal(id))
	f.g.Expect(loser.Status.ClientID).To(BeEmpty(), "the loser holds no id")
	f.g.Consistently(func() []types.UID { return backingOwners(f) }).WithTimeout(time.Second).Should(ConsistOf(holder.UID))

	// The loser's grants get nothing either.
	lg := &latchkeyv1alpha1.CredentialGrant{ObjectMeta: metav1.ObjectMeta{Name: "loser-token", Namespace: loser.Namespace},
		Spec: latchkeyv1alpha1.CredentialGrantSpec{ClientName: "racer"}}
	f.g.Expect(env.Client.Create(f.ctx, lg)).To(Succeed())
	f.g.Eventually(func(g Gomega) {
		g.Expect(env.Client.Get(f.ctx, client.ObjectKeyFromObject(lg), lg)).To(Succeed())
		cond := meta.FindStatusCondition(lg.Status.Conditions, latchkeyv1alpha1.ConditionReady)
		g.Expect(cond).NotTo(BeNil())
		g.Expect(cond.Reason).To(Equal(latchkeyv1alpha1.ReasonClientNotReady))
	}).Should(Succeed())
	f.g.Expect(backingOwners(f)).To(ConsistOf(holder.UID))

	// Deleting the holder frees the id for the other.
	f.g.Expect(env.Client.Delete(f.ctx, holder)).To(Succeed())
	f.g.Eventually(func(g Gomega) {
		g.Expect(env.Client.Get(f.ctx, client.ObjectKeyFromObject(loser), loser)).To(Succeed())
		g.Expect(meta.IsStatusConditionTrue(loser.Status.Conditions, latchkeyv1alpha1.ConditionReady)).To(BeTrue())
		g.Expect(loser.Status.ClientID).To(Equal(id))
	}).Should(Succeed())
	f.g.Eventually(func() []types.UID { return backingOwners(f) }).Should(ConsistOf(loser.UID, lg.UID))
}

// backingOwners lists the owner UIDs of the backing tokens in the operator
// namespace.
func backingOwners(f *fixture) []types.UID {
	var list corev1.SecretList
	f.g.Expect(env.Client.List(f.ctx, &list, client.InNamespace(f.opNs))).To(Succeed())
	var out []types.UID
	for i := range list.Items {
		if bt, err := backing.FromSecret(&list.Items[i]); err == nil {
			out = append(out, bt.OwnerUID)
		}
	}
	return out
}

func eventReasonsIn(f *fixture, ns, name string) []string {
	var events eventsv1.EventList
	_ = env.Client.List(f.ctx, &events, client.InNamespace(ns))
	var out []string
	for _, e := range events.Items {
		if e.Regarding.Name == name {
			out = append(out, e.Reason)
		}
	}
	return out
}
