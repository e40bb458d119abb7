package suite_test

import (
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/backing"
	"github.com/latchkey-dev/latchkey/internal/controller"
	"github.com/latchkey-dev/latchkey/internal/token"
)

// An object only a person can unblock reports Stalled=True with the Ready
// reason and what to do; Stalled goes once the person has acted.
func TestStalledUntilAPersonActs(t *testing.T) {
	f := newFixture(t).start()
	// Someone else's Secrets of the client's and of the grant's name.
	for _, name := range []string{"owner", "g"} {
		f.g.Expect(env.Client.Create(f.ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.ns},
			StringData: map[string]string{"x": "not Latchkey's"}})).To(Succeed())
	}
	c := f.client("owner")
	f.waitCondition(c, latchkeyv1alpha1.ConditionReady, metav1.ConditionFalse, latchkeyv1alpha1.ReasonSecretConflict)
	f.waitCondition(c, latchkeyv1alpha1.ConditionStalled, metav1.ConditionTrue, latchkeyv1alpha1.ReasonSecretConflict)
	f.g.Expect(meta.FindStatusCondition(c.Status.Conditions, latchkeyv1alpha1.ConditionStalled).Message).To(
		ContainSubstring("delete it, or set spec.secretName to another name"))

	f.patch(c, `{"spec":{"secretName":"owner-creds"}}`)
	f.waitReady(c)
	f.g.Expect(meta.FindStatusCondition(c.Status.Conditions, latchkeyv1alpha1.ConditionStalled)).To(BeNil(), "Stalled goes once resolved")

	g := f.grant("g", "owner")
	f.waitCondition(g, latchkeyv1alpha1.ConditionStalled, metav1.ConditionTrue, latchkeyv1alpha1.ReasonSecretConflict)
	f.g.Expect(env.Client.Delete(f.ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "g", Namespace: f.ns}})).To(Succeed())
	f.waitReady(g)
	f.g.Expect(meta.FindStatusCondition(g.Status.Conditions, latchkeyv1alpha1.ConditionStalled)).To(BeNil())

	// Expired: stalled until spec.expiresAt is later.
	f.patch(g, `{"spec":{"expiresAt":"2020-01-01T00:00:00Z"}}`)
	f.waitCondition(g, latchkeyv1alpha1.ConditionStalled, metav1.ConditionTrue, latchkeyv1alpha1.ReasonExpired)
	f.g.Expect(meta.FindStatusCondition(g.Status.Conditions, latchkeyv1alpha1.ConditionStalled).Message).To(
		ContainSubstring("set a later spec.expiresAt"))
	f.patch(g, `{"spec":{"expiresAt":"2099-01-01T00:00:00Z"}}`)
	f.waitReady(g)
	f.g.Expect(meta.FindStatusCondition(g.Status.Conditions, latchkeyv1alpha1.ConditionStalled)).To(BeNil())

	// Waiting for something that may still come is not stalled.
	early := f.grant("early", "later")
	f.waitCondition(early, latchkeyv1alpha1.ConditionReady, metav1.ConditionFalse, latchkeyv1alpha1.ReasonClientNotFound)
	f.g.Expect(meta.FindStatusCondition(early.Status.Conditions, latchkeyv1alpha1.ConditionStalled)).To(BeNil())
}

// A manager that crashed between creating a backing token and writing its
// consumer Secret left an orphan that no consumer ever saw: on restart the
// credential is issued (a Normal Issued Event), with no Reissued warning,
// and the orphan is deleted.
func TestCrashBeforeFirstSecretIsNoReissue(t *testing.T) {
	f := newFixture(t) // the operator is "down"
	c := f.client("owner")
	g := f.grant("g", "owner")
	clientID, err := token.NewClientID()
	f.g.Expect(err).NotTo(HaveOccurred())
	var orphans []string
	orphan := func(kind, name, typ string, owner metav1.Object) {
		id, err := token.NewTokenID()
		f.g.Expect(err).NotTo(HaveOccurred())
		secret, err := token.NewClientSecret()
		f.g.Expect(err).NotTo(HaveOccurred())
		bt := backing.Token{ID: id, Hash: token.HashGenerated(id, secret), OwnerKind: kind, OwnerNamespace: f.ns,
			OwnerName: name, OwnerUID: owner.GetUID(), ClientUID: c.UID, ClientID: clientID, Type: typ}
		f.g.Expect(env.Client.Create(f.ctx, bt.Secret(f.opNs))).To(Succeed())
		orphans = append(orphans, id)
	}
	orphan(backing.KindApiClient, c.Name, backing.TypeClientSecret, c)
	orphan(backing.KindCredentialGrant, g.Name, string(latchkeyv1alpha1.CredentialTypeBearer), g)

	f.start() // the restart
	f.waitReady(c)
	f.waitReady(g)
	f.g.Eventually(func() []string { return eventReasons(f, "owner") }).Should(ContainElement(controller.EventIssued))
	f.g.Eventually(func() []string { return eventReasons(f, "g") }).Should(ContainElement(controller.EventIssued))
	f.g.Eventually(func() []string { return tokenIDs(f.tokens()) }).ShouldNot(ContainElements(orphans[0]))
	f.g.Eventually(func() []string { return tokenIDs(f.tokens()) }).ShouldNot(ContainElements(orphans[1]))
	f.g.Expect(f.tokens()).To(HaveKey(c.Status.TokenID))
	f.g.Expect(f.tokens()).To(HaveKey(g.Status.TokenID))
	for _, name := range []string{"owner", "g"} {
		f.g.Expect(eventReasons(f, name)).NotTo(ContainElements(controller.EventReissued), name)
		f.g.Expect(eventReasons(f, name)).NotTo(ContainElements(controller.EventTampered), name)
	}
	f.g.Expect(warnings(f)).To(BeEmpty(), "no Warning Event")
}

func warnings(f *fixture) []string {
	var list eventsv1.EventList
	f.g.Expect(env.Client.List(f.ctx, &list, client.InNamespace(f.ns))).To(Succeed())
	var out []string
	for _, e := range list.Items {
		if e.Type == corev1.EventTypeWarning {
			out = append(out, e.Regarding.Name+": "+e.Reason+": "+e.Note)
		}
	}
	return out
}
