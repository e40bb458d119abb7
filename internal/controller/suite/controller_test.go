package suite_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/backing"
	"github.com/latchkey-dev/latchkey/internal/controller"
	"github.com/latchkey-dev/latchkey/internal/heartbeat"
	"github.com/latchkey-dev/latchkey/internal/logging"
	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/testenv"
	"github.com/latchkey-dev/latchkey/internal/token"
)

// Acceptance 1: issue → consumer Secret with the documented keys, backing
// token holding only a hash that verifies the Secret's value, status Ready.
func TestIssueClientAndGrants(t *testing.T) {
	f := newFixture(t).start()
	c := f.client("reader", func(c *latchkeyv1alpha1.ApiClient) {
		c.Spec.SecretTemplate = &latchkeyv1alpha1.SecretTemplate{Labels: map[string]string{"team": "blue"}}
		c.Labels = map[string]string{"argocd.argoproj.io/instance": "apps"}
	})
	f.waitReady(c)
	f.g.Expect(c.Status.ClientID).To(MatchRegexp(`^id_[A-Za-z0-9_-]{16}$`))
	f.g.Expect(c.Status.TokenID).NotTo(BeEmpty())
	f.g.Expect(c.Status.ObservedGeneration).To(Equal(c.Generation))
	f.waitCondition(c, latchkeyv1alpha1.ConditionActive, metav1.ConditionTrue, latchkeyv1alpha1.ReasonActive)

	cs := f.secret("reader")
	f.g.Expect(cs.Type).To(Equal(latchkeyv1alpha1.ClientSecretType))
	f.g.Expect(cs.Data).To(HaveKeyWithValue("client_id", []byte(c.Status.ClientID)))
	f.g.Expect(string(cs.Data["client_secret"])).To(MatchRegexp(`^key_[A-Za-z0-9_-]{43}$`))
	f.g.Expect(cs.Labels).To(HaveKeyWithValue("app.kubernetes.io/managed-by", "latchkey"))
	f.g.Expect(cs.Labels).To(HaveKeyWithValue("team", "blue"))
	f.g.Expect(cs.Labels).NotTo(HaveKey("argocd.argoproj.io/instance"), "the resource's own labels are never copied")
	f.g.Expect(metav1.IsControlledBy(cs, c)).To(BeTrue())

	toks := f.tokens()
	bt, ok := toks[c.Status.TokenID]
	f.g.Expect(ok).To(BeTrue())
	f.g.Expect(bt.OwnerUID).To(Equal(c.UID))
	f.g.Expect(bt.ClientID).To(Equal(c.Status.ClientID))
	assertNoPlaintext(f, bt.ID, cs.Data["client_secret"])
	okv, err := token.Verify(bt.Hash, bt.ID, string(cs.Data["client_secret"]))
	f.g.Expect(err).NotTo(HaveOccurred())
	f.g.Expect(okv).To(BeTrue(), "the stored hash verifies the Secret's value")

	exp := metav1.NewTime(time.Now().Add(time.Hour).Truncate(time.Second))
	for _, tc := range []struct {
		typ  latchkeyv1alpha1.CredentialType
		keys []string
	}{
		{latchkeyv1alpha1.CredentialTypeBearer, []string{"token", "token_id", "client_id", "expires_at"}},
		{latchkeyv1alpha1.CredentialTypeKeyAuth, []string{"token", "token_id", "client_id", "expires_at", "key_id", "key_secret"}},
		{latchkeyv1alpha1.CredentialTypeBasicAuth, []string{"token", "token_id", "client_id", "expires_at", "username", "password"}},
	} {
		t.Run(string(tc.typ), func(t *testing.T) {
			g := f.grant("grant-"+string(tc.typ), "reader", func(g *latchkeyv1alpha1.CredentialGrant) {
				g.Spec.Type, g.Spec.ExpiresAt, g.Spec.Permissions = tc.typ, &exp, []string{"blogs.read"}
			})
			f.waitReady(g)
			f.g.Expect(g.Status.TokenID).NotTo(BeEmpty())
			f.g.Expect(g.Status.ClientID).To(Equal(c.Status.ClientID))
			f.g.Expect(g.Status.ExpiresAt.Equal(&exp)).To(BeTrue())
			f.g.Expect(g.Status.IssuedAt).NotTo(BeNil())
			s := f.secret(g.Name)
			f.g.Expect(s.Data).To(HaveLen(len(tc.keys)))
			for _, k := range tc.keys {
				f.g.Expect(s.Data).To(HaveKey(k))
			}
			f.g.Expect(string(s.Data["expires_at"])).To(Equal(exp.UTC().Format(time.RFC3339)))
			tok, err := token.Parse(string(s.Data["token"]))
			f.g.Expect(err).NotTo(HaveOccurred())
			f.g.Expect(tok.ID).To(Equal(g.Status.TokenID))
			bt := f.tokens()[tok.ID]
			f.g.Expect(bt.ClientUID).To(Equal(c.UID))
			f.g.Expect(bt.ExpiresAt.Equal(exp.Time)).To(BeTrue(), "the backing token carries the expiry")
			assertNoPlaintext(f, bt.ID, []byte(tok.String()), []byte(tok.Secret))
			okv, _ := token.Verify(bt.Hash, bt.ID, tok.Secret)
			f.g.Expect(okv).To(BeTrue())
			if tc.typ == latchkeyv1alpha1.CredentialTypeKeyAuth {
				f.g.Expect(string(s.Data["key_id"]) + ":" + string(s.Data["key_secret"])).To(Equal(tok.ID + ":" + tok.Secret))
			}
		})
	}
}

// assertNoPlaintext checks a backing token Secret as stored by the API server.
func assertNoPlaintext(f *fixture, id string, secrets ...[]byte) {
	f.t.Helper()
	raw := &corev1.Secret{}
	f.g.Expect(env.Client.Get(f.ctx, client.ObjectKey{Namespace: f.opNs, Name: backing.Name(id)}, raw)).To(Succeed())
	blob, _ := json.Marshal(raw)
	for _, s := range secrets {
		f.g.Expect(bytes.Contains(blob, s)).To(BeFalse(), "backing token holds plaintext")
	}
	f.g.Expect(raw.Data).To(HaveLen(1))
	f.g.Expect(raw.Data).To(HaveKey("hash"))
}

// Acceptance 2: a restarted operator leaves every issued secret
// byte-identical and a full reconcile of 100 objects makes zero writes.
func TestRestartAndResyncWriteNothing(t *testing.T) {
	f := newFixture(t)
	stop := startStoppable(f, f.options())
	const n = 50
	for i := range n {
		c := f.client(fmt.Sprintf("c%d", i))
		f.grant(fmt.Sprintf("g%d", i), c.Name)
	}
	var before corev1.SecretList
	f.g.Eventually(func(g Gomega) {
		var cl latchkeyv1alpha1.CredentialGrantList
		g.Expect(env.Client.List(f.ctx, &cl, client.InNamespace(f.ns))).To(Succeed())
		for _, gr := range cl.Items {
			g.Expect(gr.Status.Conditions).To(ContainElement(HaveField("Reason", latchkeyv1alpha1.ReasonIssued)), gr.Name)
		}
		g.Expect(env.Client.List(f.ctx, &before, client.InNamespace(f.ns), client.MatchingLabels{"app.kubernetes.io/managed-by": "latchkey"})).To(Succeed())
		g.Expect(before.Items).To(HaveLen(2 * n))
	}).WithTimeout(60 * time.Second).Should(Succeed())
	stop()

	// A second operator process, every API call it makes counted.
	var writes atomic.Int64
	cfg := rest.CopyConfig(env.Config)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			// The heartbeat (one patch per replica per interval, whatever
			// the number of objects) is the one write a running manager makes.
			if r.Method != http.MethodGet && !strings.HasSuffix(r.URL.Path, "/secrets/"+heartbeat.Name) {
				writes.Add(1)
				t.Logf("write by the restarted operator: %s %s", r.Method, r.URL.Path)
			}
			return rt.RoundTrip(r)
		})
	})
	reconciled := reconcileCount()
	mgr, err := operator.NewManager(cfg, withSkip(f.options()))
	f.g.Expect(err).NotTo(HaveOccurred())
	testenv.RunManager(t, mgr)
	// Every object is reconciled on start; wait for all 100 and for the queues to drain.
	f.g.Eventually(func() float64 { return reconcileCount() - reconciled }).WithTimeout(60 * time.Second).Should(BeNumerically(">=", 2*n))
	// A forced resync: touch every object (a change of an unrelated annotation reconciles it again).
	for i := range n {
		for _, obj := range []client.Object{&latchkeyv1alpha1.ApiClient{}, &latchkeyv1alpha1.CredentialGrant{}} {
			obj.SetNamespace(f.ns)
			obj.SetName(fmt.Sprintf("%s%d", map[bool]string{true: "c", false: "g"}[isClient(obj)], i))
			f.g.Expect(env.Client.Patch(f.ctx, obj, client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"annotations":{"touched":"1"}}}`)))).To(Succeed())
		}
	}
	f.g.Eventually(func() float64 { return reconcileCount() - reconciled }).WithTimeout(60 * time.Second).Should(BeNumerically(">=", 4*n))
	f.g.Consistently(func() float64 { return queueDepth() }).WithTimeout(time.Second).Should(BeZero())

	var after corev1.SecretList
	f.g.Expect(env.Client.List(f.ctx, &after, client.InNamespace(f.ns), client.MatchingLabels{"app.kubernetes.io/managed-by": "latchkey"})).To(Succeed())
	f.g.Expect(after.Items).To(HaveLen(len(before.Items)))
	for i := range before.Items {
		f.g.Expect(after.Items[i].Name).To(Equal(before.Items[i].Name))
		f.g.Expect(after.Items[i].Data).To(Equal(before.Items[i].Data), "secret %s changed", before.Items[i].Name)
		f.g.Expect(after.Items[i].ResourceVersion).To(Equal(before.Items[i].ResourceVersion), "secret %s was written", before.Items[i].Name)
	}
	f.g.Expect(writes.Load()).To(BeZero(), "the restarted operator wrote to the API server")
}

func isClient(o client.Object) bool { _, ok := o.(*latchkeyv1alpha1.ApiClient); return ok }

// Acceptance 3: deleting revokes; a client deleted while no operator runs is
// cleaned up by the next one.
func TestDeleteRevokes(t *testing.T) {
	f := newFixture(t)
	stop := startStoppable(f, f.options())
	c := f.client("owner")
	f.waitReady(c)
	var grants []*latchkeyv1alpha1.CredentialGrant
	for i := range 3 {
		g := f.grant(fmt.Sprintf("g%d", i), "owner")
		f.waitReady(g)
		grants = append(grants, g)
	}
	f.g.Expect(f.tokens()).To(HaveLen(4))

	// Delete one grant: its backing token is gone.
	f.g.Expect(env.Client.Delete(f.ctx, grants[0])).To(Succeed())
	f.g.Eventually(func() []string { return tokenIDs(f.tokens()) }).ShouldNot(ContainElement(grants[0].Status.TokenID))
	f.g.Eventually(func() bool { return apierrors.IsNotFound(f.get(grants[0])) }).Should(BeTrue())
	f.g.Expect(f.tokens()).To(HaveLen(3))

	// Delete the client while no operator runs.
	stop()
	f.g.Expect(env.Client.Delete(f.ctx, c)).To(Succeed())
	time.Sleep(500 * time.Millisecond)
	f.g.Expect(f.get(c)).To(Succeed(), "the finalizer holds the client until its tokens are revoked")
	f.g.Expect(f.tokens()).To(HaveLen(3))

	f.start()
	f.g.Eventually(func() map[string]backing.Token { return f.tokens() }).Should(BeEmpty(), "client and grant tokens revoked")
	f.g.Eventually(func() bool { return apierrors.IsNotFound(f.get(c)) }).Should(BeTrue())
	for _, g := range grants[1:] {
		f.waitCondition(g, latchkeyv1alpha1.ConditionReady, metav1.ConditionFalse, latchkeyv1alpha1.ReasonClientNotFound)
		f.waitCondition(g, latchkeyv1alpha1.ConditionRevoked, metav1.ConditionTrue, latchkeyv1alpha1.ReasonRevoked)
	}
}

// Acceptance 4: expiry in the past is immediate; a near expiry happens on
// time through a computed requeue, not polling.
func TestExpiry(t *testing.T) {
	f := newFixture(t).start()
	c := f.client("owner")
	f.waitReady(c)

	past := metav1.NewTime(time.Now().Add(-time.Minute))
	old := f.grant("old", "owner", func(g *latchkeyv1alpha1.CredentialGrant) { g.Spec.ExpiresAt = &past })
	f.waitCondition(old, latchkeyv1alpha1.ConditionExpired, metav1.ConditionTrue, latchkeyv1alpha1.ReasonExpired)
	f.waitCondition(old, latchkeyv1alpha1.ConditionReady, metav1.ConditionFalse, latchkeyv1alpha1.ReasonExpired)
	for _, bt := range f.tokens() {
		f.g.Expect(bt.OwnerName).NotTo(Equal("old"), "an expired grant has no backing token")
	}

	at := time.Now().Add(3 * time.Second).Truncate(time.Second).Add(time.Second)
	soon := f.grant("soon", "owner", func(g *latchkeyv1alpha1.CredentialGrant) { g.Spec.ExpiresAt = &metav1.Time{Time: at} })
	f.waitReady(soon)
	id := soon.Status.TokenID
	f.g.Expect(f.tokens()).To(HaveKey(id))
	f.g.Eventually(func() map[string]backing.Token { return f.tokens() }).WithTimeout(time.Until(at) + 10*time.Second).
		WithPolling(20 * time.Millisecond).ShouldNot(HaveKey(id))
	late := time.Since(at)
	t.Logf("backing token deleted %v after expiresAt", late)
	f.g.Expect(late).To(BeNumerically("<", time.Second), "expired within a second of expiresAt")
	f.waitCondition(soon, latchkeyv1alpha1.ConditionExpired, metav1.ConditionTrue, latchkeyv1alpha1.ReasonExpired)

	// Extending an expired grant issues a new credential.
	f.patch(soon, fmt.Sprintf(`{"spec":{"expiresAt":%q}}`, time.Now().Add(time.Hour).UTC().Format(time.RFC3339)))
	f.waitReady(soon)
	f.g.Expect(soon.Status.TokenID).NotTo(Equal(id))
}

// Acceptance 5: rotation with and without a grace period.
func TestRotation(t *testing.T) {
	f := newFixture(t).start()
	c := f.client("owner")
	f.waitReady(c)
	oldClient := c.Status.TokenID

	withGrace := f.grant("graceful", "owner", func(g *latchkeyv1alpha1.CredentialGrant) {
		g.Spec.Rotation = &latchkeyv1alpha1.Rotation{GracePeriod: &metav1.Duration{Duration: 3 * time.Second}}
	})
	plain := f.grant("plain", "owner")
	f.waitReady(withGrace)
	f.waitReady(plain)
	oldGrace, oldPlain := withGrace.Status.TokenID, plain.Status.TokenID
	oldGraceToken := f.secret("graceful").Data["token"]

	for _, obj := range []client.Object{withGrace, plain, c} {
		f.g.Expect(env.Client.Patch(f.ctx, obj, client.RawPatch("application/merge-patch+json",
			[]byte(`{"metadata":{"annotations":{"latchkey.dev/rotate":"2026-11-23"}}}`)))).To(Succeed())
	}
	f.g.Eventually(func(g Gomega) {
		g.Expect(f.get(withGrace)).To(Succeed())
		g.Expect(withGrace.Status.TokenID).NotTo(Equal(oldGrace))
		g.Expect(f.get(plain)).To(Succeed())
		g.Expect(plain.Status.TokenID).NotTo(Equal(oldPlain))
		g.Expect(f.get(c)).To(Succeed())
		g.Expect(c.Status.TokenID).NotTo(Equal(oldClient))
	}).Should(Succeed())
	toks := f.tokens()
	f.g.Expect(toks).NotTo(HaveKey(oldPlain), "without a grace period the old token goes at once")
	f.g.Expect(toks).NotTo(HaveKey(oldClient))
	f.g.Expect(toks).To(HaveKey(oldGrace), "inside the grace period both tokens exist")
	f.g.Expect(toks).To(HaveKey(withGrace.Status.TokenID))
	f.g.Expect(toks[oldGrace].RetireAt).NotTo(BeNil())
	f.g.Expect(f.secret("graceful").Data["token"]).NotTo(Equal(oldGraceToken))

	f.g.Eventually(func() map[string]backing.Token { return f.tokens() }).WithTimeout(10 * time.Second).ShouldNot(HaveKey(oldGrace))
	f.g.Expect(f.tokens()).To(HaveKey(withGrace.Status.TokenID), "after the grace period only the new one")

	// The same annotation value again is no new request.
	id := withGrace.Status.TokenID
	f.g.Consistently(func() string { _ = f.get(withGrace); return withGrace.Status.TokenID }).WithTimeout(time.Second).Should(Equal(id))
}

// Acceptance 6: a consumer Secret deleted or altered by hand is reissued
// with an Event; any apply order converges.
func TestReissueAndApplyOrder(t *testing.T) {
	f := newFixture(t).start()
	c := f.client("owner")
	f.waitReady(c)
	g := f.grant("g", "owner")
	f.waitReady(g)
	old := g.Status.TokenID

	f.g.Expect(env.Client.Delete(f.ctx, f.secret("g"))).To(Succeed())
	f.g.Eventually(func() string { _ = f.get(g); return g.Status.TokenID }).ShouldNot(Equal(old))
	f.g.Expect(f.tokens()).NotTo(HaveKey(old))
	f.g.Expect(f.secret("g").Data["token_id"]).To(Equal([]byte(g.Status.TokenID)))
	f.g.Eventually(func() []string { return eventReasons(f, "g") }).Should(ContainElement(controller.EventReissued))

	// Altered by hand: the token no longer matches its hash.
	s := f.secret("g")
	second := g.Status.TokenID
	s.Data["token"] = []byte(strings.Repeat("x", len(s.Data["token"])))
	f.g.Expect(env.Client.Update(f.ctx, s)).To(Succeed())
	f.g.Eventually(func() string { _ = f.get(g); return g.Status.TokenID }).ShouldNot(Equal(second))
	f.g.Expect(f.tokens()).NotTo(HaveKey(second))

	// A grant applied before its client.
	early := f.grant("early", "later")
	f.waitCondition(early, latchkeyv1alpha1.ConditionReady, metav1.ConditionFalse, latchkeyv1alpha1.ReasonClientNotFound)
	f.client("later")
	f.waitReady(early)

	// A client applied before its referenced Secret.
	fixed := f.client("fixed", func(c *latchkeyv1alpha1.ApiClient) {
		c.Spec.Scopes, c.Spec.Permissions, c.Spec.Tenant = []string{"system"}, []string{"system.organizations.read"}, ""
		c.Spec.ClientID = "sysadmin-org-" + f.ns
		c.Spec.ClientSecretRef = &latchkeyv1alpha1.SecretKeyReference{Name: "chosen", Key: "password"}
	})
	f.waitCondition(fixed, latchkeyv1alpha1.ConditionReady, metav1.ConditionFalse, latchkeyv1alpha1.ReasonSecretRefNotFound)
	// The message is written for a person, not a NotFound error's text.
	for _, cond := range fixed.Status.Conditions {
		if cond.Type == latchkeyv1alpha1.ConditionReady {
			f.g.Expect(cond.Message).To(Equal(fmt.Sprintf(`Secret "chosen" (spec.clientSecretRef) does not exist in namespace %q: `+
				`create it with key "password"; the client is issued as soon as it exists`, f.ns)))
		}
	}
	f.g.Expect(env.Client.Create(f.ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "chosen", Namespace: f.ns},
		StringData: map[string]string{"password": "my-insecure-password"}})).To(Succeed())
	f.waitReady(fixed)
	f.g.Expect(fixed.Status.ClientID).To(Equal("sysadmin-org-" + f.ns))
	fs := f.secret("fixed")
	f.g.Expect(string(fs.Data["client_secret"])).To(Equal("my-insecure-password"))
	bt := f.tokens()[fixed.Status.TokenID]
	f.g.Expect(bt.Hash).To(HavePrefix("argon2id$"), "a user-chosen secret gets a slow KDF")
	okv, _ := token.Verify(bt.Hash, bt.ID, "my-insecure-password")
	f.g.Expect(okv).To(BeTrue())
}

// A grant's Ready follows its client: deactivation and missing permissions.
func TestGrantFollowsClient(t *testing.T) {
	f := newFixture(t).start()
	c := f.client("owner")
	f.waitReady(c)
	g := f.grant("g", "owner", func(g *latchkeyv1alpha1.CredentialGrant) { g.Spec.Permissions = []string{"blogs.write"} })
	f.waitReady(g)
	id := g.Status.TokenID
	before := len(f.tokens())

	f.patch(c, `{"spec":{"active":false}}`)
	f.waitCondition(c, latchkeyv1alpha1.ConditionActive, metav1.ConditionFalse, latchkeyv1alpha1.ReasonDeactivated)
	f.waitCondition(g, latchkeyv1alpha1.ConditionReady, metav1.ConditionFalse, latchkeyv1alpha1.ReasonClientInactive)
	f.g.Expect(f.tokens()).To(HaveLen(before), "deactivating deletes nothing")

	f.patch(c, `{"spec":{"active":true,"permissions":["blogs.read"]}}`)
	f.waitCondition(g, latchkeyv1alpha1.ConditionReady, metav1.ConditionFalse, latchkeyv1alpha1.ReasonPermissionNotGranted)
	f.g.Expect(readyMessage(g)).To(ContainSubstring("blogs.write"))

	f.patch(c, `{"spec":{"permissions":["blogs.read","blogs.write"]}}`)
	f.waitReady(g)
	f.g.Expect(g.Status.TokenID).To(Equal(id), "reactivation restores the credential unchanged")
	f.g.Eventually(func() []string { return eventReasons(f, "owner") }).Should(ContainElements(controller.EventDeactivated, controller.EventActivated))
}

func readyMessage(g *latchkeyv1alpha1.CredentialGrant) string {
	for _, c := range g.Status.Conditions {
		if c.Type == latchkeyv1alpha1.ConditionReady {
			return c.Message
		}
	}
	return ""
}

// Acceptance 7: no secret reaches logs, Events, status or metrics, in any
// form (raw, base64, hex, hex-dump fragments: testenv.LeakForms): not the
// user-chosen client secret, not the generated client secrets and tokens, not
// the backing-token hashes. The operator logs at the highest verbosity
// (--zap-log-level=10) with client-go's own logging at its maximum, through
// the production logger (internal/logging): client-go logs request and
// response bodies, Secrets included, at V(8) and above unless capped.
func TestSecretsNeverLeak(t *testing.T) {
	var logs testenv.SyncBuffer
	untap := testenv.Logs.Tap(&logs)
	prev, prevKlog := testenv.LogLevel.Level(), logging.KlogVerbosity()
	testenv.LogLevel.SetLevel(-10) // --zap-log-level=10
	// -v=10 for klog, before the manager builds its clients: client-go adds
	// its request-logging round tripper when klog.V(6) is on.
	logging.SetKlogVerbosity(10)
	defer func() { testenv.LogLevel.SetLevel(prev); logging.SetKlogVerbosity(prevKlog); untap() }()

	f := newFixture(t).start()
	const canary = "CANARY-6f1d2c9a-never-log-me"
	secrets := map[string][]byte{"user-chosen client secret (Secret chosen)": []byte(canary)}
	f.g.Expect(env.Client.Create(f.ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "chosen", Namespace: f.ns},
		StringData: map[string]string{"client_secret": canary}})).To(Succeed())
	c := f.client("canary", func(c *latchkeyv1alpha1.ApiClient) {
		c.Spec.ClientSecretRef = &latchkeyv1alpha1.SecretKeyReference{Name: "chosen"}
	})
	gen := f.client("generated")
	f.waitReady(c)
	f.waitReady(gen)
	var grants []*latchkeyv1alpha1.CredentialGrant
	for _, typ := range []latchkeyv1alpha1.CredentialType{latchkeyv1alpha1.CredentialTypeBearer, latchkeyv1alpha1.CredentialTypeKeyAuth, latchkeyv1alpha1.CredentialTypeBasicAuth} {
		g := f.grant("g-"+string(typ), "canary", func(g *latchkeyv1alpha1.CredentialGrant) { g.Spec.Type = typ })
		f.waitReady(g)
		grants = append(grants, g)
	}
	issuedSecrets(t, f.ctx, env.Client, f.ns, f.opNs, secrets)
	// Reissue and rotate so every code path that handles a secret runs; the
	// secrets issued before stay searched for.
	g := grants[0]
	f.g.Expect(env.Client.Delete(f.ctx, f.secret(g.Name))).To(Succeed())
	f.g.Eventually(func() []string { return eventReasons(f, g.Name) }).Should(ContainElement(controller.EventReissued))
	f.waitReady(g)
	f.patch(gen, `{"metadata":{"annotations":{"latchkey.dev/rotate":"1"}}}`)
	f.g.Eventually(func() []string { return eventReasons(f, gen.Name) }).Should(ContainElement(controller.EventRotated))
	f.waitReady(gen)
	issuedSecrets(t, f.ctx, env.Client, f.ns, f.opNs, secrets)

	events, resources := apiObjects(t, f.ctx, env.Client, f.ns)
	scraped := metricsText(t)
	f.g.Expect(string(scraped)).To(ContainSubstring("latchkey_credentials_issued_total"))
	out := logs.String()
	assertNoLeaks(t, map[string][]byte{
		"logs": []byte(out), "Events": events, "resources' status": resources, "metrics": scraped,
	}, secrets)
	// The capture is not vacuous: it holds V(0) lines, controller-runtime's
	// V(5) lines and client-go's request lines at V(6)/V(7) (the last
	// verbosities below the cap), with the credentials of the requests
	// masked.
	f.g.Expect(out).To(ContainSubstring("Issued secret"), "V(0) lines were captured")
	f.g.Expect(out).To(ContainSubstring("Reconcile successful"), "controller-runtime's V(5) lines were captured")
	f.g.Expect(out).To(MatchRegexp(`Request\s.*"verb": "(GET|POST|PUT|PATCH)".*"headers"`), "client-go's V(7) request lines were captured")
	f.g.Expect(out).NotTo(ContainSubstring("Response Body"), "client-go's V(8) body lines are capped")
}

// Acceptance 8: unrelated Secrets never enter the operator's cache.
func TestCacheHoldsOnlyLatchkeySecrets(t *testing.T) {
	f := newFixture(t)
	big := bytes.Repeat([]byte("x"), 100*1024)
	for i := range 200 {
		f.g.Expect(env.Client.Create(f.ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("unrelated-%d", i), Namespace: f.ns},
			Data: map[string][]byte{"blob": big}})).To(Succeed())
	}
	f.start()
	c := f.client("owner")
	f.waitReady(c)

	var cached corev1.SecretList
	f.g.Expect(f.mgr.GetCache().List(f.ctx, &cached)).To(Succeed())
	f.g.Expect(cached.Items).NotTo(BeEmpty(), "Latchkey's own Secrets are cached")
	for _, s := range cached.Items {
		f.g.Expect(s.Name).NotTo(HavePrefix("unrelated-"))
		f.g.Expect(s.Labels).To(HaveKeyWithValue("app.kubernetes.io/managed-by", "latchkey"))
		f.g.Expect(s.ManagedFields).To(BeEmpty(), "managedFields are stripped")
	}
	// Any other kind is refused rather than silently cached.
	var pods corev1.PodList
	f.g.Expect(f.mgr.GetCache().List(f.ctx, &pods)).NotTo(Succeed())
	// ConfigMaps: only revocation records, in the token namespace.
	for _, ns := range []string{f.ns, f.opNs} {
		f.g.Expect(env.Client.Create(f.ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "unrelated", Namespace: ns,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "latchkey"}}})).To(Succeed())
	}
	f.g.Consistently(func() []corev1.ConfigMap {
		var cms corev1.ConfigMapList
		f.g.Expect(f.mgr.GetCache().List(f.ctx, &cms)).To(Succeed())
		return cms.Items
	}).WithTimeout(time.Second).Should(BeEmpty())
}

func eventReasons(f *fixture, name string) []string {
	var events eventsv1.EventList
	if err := env.Client.List(f.ctx, &events, client.InNamespace(f.ns)); err != nil {
		return nil
	}
	var out []string
	for _, e := range events.Items {
		if e.Regarding.Name == name {
			out = append(out, e.Reason)
		}
	}
	return out
}

// Changing spec.secretName moves the credential to the new Secret (the same
// secret: nothing is reissued) and deletes the old one.
func TestSecretNameChangeMovesTheSecret(t *testing.T) {
	f := newFixture(t).start()
	c := f.client("owner")
	f.waitReady(c)
	g := f.grant("g", "owner")
	f.waitReady(g)
	oldToken, oldClientSecret := f.secret("g").Data["token"], f.secret("owner").Data["client_secret"]

	f.patch(g, `{"spec":{"secretName":"g-moved"}}`)
	f.patch(c, `{"spec":{"secretName":"owner-moved"}}`)
	f.g.Eventually(func() bool {
		return apierrors.IsNotFound(env.Client.Get(f.ctx, client.ObjectKey{Namespace: f.ns, Name: "g"}, &corev1.Secret{}))
	}).Should(BeTrue())
	f.g.Eventually(func() bool {
		return apierrors.IsNotFound(env.Client.Get(f.ctx, client.ObjectKey{Namespace: f.ns, Name: "owner"}, &corev1.Secret{}))
	}).Should(BeTrue())
	f.g.Expect(f.secret("g-moved").Data["token"]).To(Equal(oldToken))
	f.g.Expect(f.secret("owner-moved").Data["client_secret"]).To(Equal(oldClientSecret))
	f.waitReady(g)
	f.g.Expect(g.Status.SecretName).To(Equal("g-moved"))
}
