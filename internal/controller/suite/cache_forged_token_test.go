package suite_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/backing"
)

// A damaged backing token is deleted by its own name (and UID), never by a
// name built from its token-id label: a Secret labelled as a backing token of
// client X whose token-id label names the real token of client Y must not
// make the controller of X delete Y's token.
func TestDamagedBackingTokenDeletedByItsOwnName(t *testing.T) {
	f := newFixture(t).start()
	x, y := f.client("x"), f.client("y")
	f.waitReady(x)
	f.waitReady(y)
	yToken := y.Status.TokenID
	victim := &corev1.Secret{}
	victimKey := types.NamespacedName{Namespace: f.opNs, Name: backing.Name(yToken)}
	f.g.Expect(env.Client.Get(f.ctx, victimKey, victim)).To(Succeed())

	// Unreadable as a backing token (its name is not lk-<token-id>), labelled
	// as one of X's, pointing at Y's token.
	forged := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.opNs, Name: "lk-damaged", Labels: map[string]string{
			latchkeyv1alpha1.LabelManagedBy: latchkeyv1alpha1.ManagedByValue,
			backing.LabelComponent:          backing.ComponentValue,
			backing.LabelOwnerKind:          backing.KindApiClient,
			backing.LabelOwnerUID:           string(x.UID),
			backing.LabelClientUID:          string(x.UID),
			backing.LabelTokenID:            y.Status.TokenID,
		}, Annotations: map[string]string{
			backing.AnnotationOwnerNamespace: f.ns,
			backing.AnnotationOwnerName:      x.Name,
		}},
		Type: backing.SecretType,
		Data: map[string][]byte{backing.KeyHash: []byte("not-a-hash")},
	}
	f.g.Expect(env.Client.Create(f.ctx, forged)).To(Succeed())
	f.patch(x, `{"metadata":{"annotations":{"touched":"1"}}}`)

	f.g.Eventually(func() bool {
		return apierrors.IsNotFound(env.Client.Get(f.ctx, types.NamespacedName{Namespace: f.opNs, Name: forged.Name}, &corev1.Secret{}))
	}).Should(BeTrue(), "the damaged Secret is deleted")
	f.g.Consistently(func(g Gomega) {
		now := &corev1.Secret{}
		g.Expect(env.Client.Get(f.ctx, victimKey, now)).To(Succeed(), "the other client's token was deleted")
		g.Expect(now.UID).To(Equal(victim.UID))
	}).WithTimeout(2 * time.Second).Should(Succeed())
	f.g.Expect(f.get(y)).To(Succeed())
	f.g.Expect(y.Status.TokenID).To(Equal(yToken), "the other client was reissued")
	f.g.Expect(f.tokens()).To(HaveKey(yToken))
	f.waitReady(x)
}
