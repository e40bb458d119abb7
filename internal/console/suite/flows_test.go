package suite

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/testenv"
)

// Acceptance 1 (and 4, 5 on its pages): Decidim's admin flow in the
// browser. Create a client with organization 2, scope blogs, permission
// blogs.read; its page shows client_id, and the secret only after Reveal,
// which authenticates at /oauth2/token; add blogs.write; scopes are not
// editable; Revoke after a confirmation naming the client: gone, and the
// secret gets 401.
func TestConsoleDecidimFlow(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	cs := startConsole(t, env.Config, f.ns)
	b := newBrowser(t, cs)

	b.open("/clients?namespace=" + f.ns)
	if !strings.Contains(b.text("#live"), "No API clients here yet") {
		t.Errorf("empty namespace: %q", b.text("#live"))
	}

	// An admission rejection is shown beside its field, in CEL's words.
	b.open("/clients/new?namespace=" + f.ns)
	b.do(chromedp.SendKeys(chromedp.CSS("#name"), "Blog reader"),
		chromedp.SendKeys(chromedp.CSS("#tenant"), "2"),
		chromedp.SendKeys(chromedp.CSS("#scopes"), "blogs"),
		chromedp.SetValue(chromedp.CSS("#permissions"), "proposals.read"))
	b.submit("#create")
	if got := b.text("#permissions-error"); !strings.Contains(got, "each permission must start with one of spec.scopes") {
		t.Errorf("error beside the permissions field: %q, want the CEL rule's message", got)
	}
	b.check("new-client-error")

	b.do(chromedp.SetValue(chromedp.CSS("#permissions"), "blogs.read"))
	b.submit("#create")
	testenv.Eventually(t, 60*time.Second, func() error {
		list := &latchkeyv1alpha1.ApiClientList{}
		if err := env.Client.List(ctx, list, client.InNamespace(f.ns)); err != nil || len(list.Items) != 1 || list.Items[0].Status.TokenID == "" {
			return fmt.Errorf("not issued: %v %+v", err, list.Items)
		}
		return nil
	})
	// The page updates itself (server-sent events) when the operator has
	// issued the client.
	b.waitFor(`document.querySelector("#client-id") && document.querySelector("#client-id").textContent.startsWith("id_") && !document.querySelector("#reveal").disabled`)
	clientID := b.text("#client-id")
	var c latchkeyv1alpha1.ApiClient
	list := &latchkeyv1alpha1.ApiClientList{}
	if err := env.Client.List(ctx, list, client.InNamespace(f.ns)); err != nil || len(list.Items) != 1 {
		t.Fatalf("clients: %v %v", list.Items, err)
	}
	c = list.Items[0]
	if c.Status.ClientID != clientID || c.Spec.Tenant != "2" || !slices.Equal(c.Spec.Scopes, []string{"blogs"}) ||
		!slices.Equal(c.Spec.Permissions, []string{"blogs.read"}) || c.Spec.DisplayName != "Blog reader" {
		t.Fatalf("created %+v (page shows %q)", c.Spec, clientID)
	}
	secret := secretOf(t, f.ns, c.Status.SecretName, "client_secret")
	if secret == "" {
		t.Fatal("no client_secret in the consumer Secret")
	}
	if strings.Contains(b.html(), secret) {
		t.Fatal("the client page holds the secret before Reveal")
	}
	b.check("client")

	// Reveal: a POST, whose answer shows the secret; it works at /oauth2/token.
	b.submit("#reveal")
	if got := b.text("#revealed-secret"); got != secret {
		t.Fatalf("revealed %q, want the Secret's client_secret", got)
	}
	b.screenshot("client-revealed")
	f.wantCode("client credentials at /oauth2/token", http.StatusOK, func() int { return f.token(clientID, secret) })

	// Permissions are editable; scopes and tenant are not.
	b.do(chromedp.SetValue(chromedp.CSS("#permissions"), "blogs.read\nblogs.write"))
	b.submit("#save-permissions")
	if got := b.text("#notice"); !strings.Contains(got, "Permissions saved") {
		t.Errorf("notice after saving: %q", got)
	}
	if strings.Contains(b.html(), secret) {
		t.Error("the page after saving still holds the secret")
	}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(&c), &c); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Spec.Permissions, []string{"blogs.read", "blogs.write"}) {
		t.Errorf("spec.permissions = %v after saving, want blogs.read, blogs.write", c.Spec.Permissions)
	}
	editable := eval[int](b, `document.querySelectorAll("[name=scopes], [name=tenant]").length`)
	if editable != 0 {
		t.Errorf("the client page has %d scope/tenant inputs: scopes cannot be edited", editable)
	}
	if got := b.text("#scopes-note"); !strings.Contains(got, "to change scopes, create a new client and revoke this one") {
		t.Errorf("scopes note: %q", got)
	}
	if got := b.text("#scopes"); got != "blogs" {
		t.Errorf("scopes shown: %q", got)
	}

	// Deactivate: the secret is refused; Activate: accepted again.
	b.submit("#deactivate")
	f.wantCode("deactivated client at /oauth2/token", http.StatusUnauthorized, func() int { return f.token(clientID, secret) })
	b.submit("#activate")
	f.wantCode("activated client at /oauth2/token", http.StatusOK, func() int { return f.token(clientID, secret) })

	// Rotate with a grace period of 1 hour: Reveal shows the new secret,
	// and the old one still works during the grace period.
	b.do(chromedp.SetValue(chromedp.CSS("#grace"), "1h"))
	b.submit("#rotate")
	testenv.Eventually(t, 60*time.Second, func() error {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(&c), &c); err != nil {
			return err
		}
		if s := secretOf(t, f.ns, c.Status.SecretName, "client_secret"); s == secret || c.Status.TokenID == "" {
			return fmt.Errorf("not rotated yet")
		}
		return nil
	})
	if c.Spec.Rotation == nil || c.Spec.Rotation.GracePeriod == nil || c.Spec.Rotation.GracePeriod.Duration != time.Hour {
		t.Errorf("spec.rotation after Rotate with 1 hour: %+v", c.Spec.Rotation)
	}
	b.waitFor(`!document.querySelector("#reveal").disabled`)
	b.submit("#reveal")
	rotated := b.text("#revealed-secret")
	if rotated == secret || rotated != secretOf(t, f.ns, c.Status.SecretName, "client_secret") {
		t.Fatalf("after Rotate, Reveal shows the old secret or not the Secret's")
	}
	f.wantCode("rotated secret at /oauth2/token", http.StatusOK, func() int { return f.token(clientID, rotated) })
	f.wantCode("previous secret in its grace period", http.StatusOK, func() int { return f.token(clientID, secret) })
	b.open("/clients/" + f.ns + "/" + c.Name)

	// Revoke, after a confirmation that names the client.
	b.do(chromedp.Click(chromedp.CSS("#revoke")), chromedp.WaitVisible(chromedp.CSS("#confirm-question")))
	if q := b.text("#confirm-question"); !strings.Contains(q, c.Name) || !strings.Contains(q, "Blog reader") {
		t.Errorf("confirmation %q does not name the client", q)
	}
	b.check("revoke-confirm")
	b.submit("#confirm")
	testenv.Eventually(t, 60*time.Second, func() error {
		err := env.Client.Get(ctx, client.ObjectKeyFromObject(&c), &latchkeyv1alpha1.ApiClient{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	})
	f.wantCode("revoked client at /oauth2/token", http.StatusUnauthorized, func() int { return f.token(clientID, secret) })
	f.wantCode("revoked client's rotated secret at /oauth2/token", http.StatusUnauthorized, func() int { return f.token(clientID, rotated) })
	b.waitFor(`!document.querySelector("#clients") || !document.querySelector("#clients").textContent.includes("` + clientID + `")`)

	// A second client, for the list's screenshot.
	other := &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "sysadmin-org"},
		Spec: latchkeyv1alpha1.ApiClientSpec{Scopes: []string{"system"}, Permissions: []string{"system.organizations.update"}, DisplayName: "System admin"}}
	if err := env.Client.Create(ctx, other); err != nil {
		t.Fatal(err)
	}
	b.waitFor(`!!document.querySelector("#clients") && document.querySelector("#clients").textContent.includes("System admin") && document.querySelector("#clients").textContent.includes("Ready")`)
	b.check("clients")

	// Inactive before delete: a RequireInactive client that is active
	// cannot be revoked; the confirmation page says what to do instead.
	strict := &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "strict"},
		Spec: latchkeyv1alpha1.ApiClientSpec{Scopes: []string{"system"}, DeletionPolicy: latchkeyv1alpha1.DeletionPolicyRequireInactive}}
	if err := env.Client.Create(ctx, strict); err != nil {
		t.Fatal(err)
	}
	b.open("/clients/" + f.ns + "/strict/revoke")
	if got := b.text("#blocked"); !strings.Contains(got, "must be deactivated") {
		t.Errorf("RequireInactive: %q", got)
	}
	if n := eval[int](b, `document.querySelectorAll("#confirm").length`); n != 0 {
		t.Error("the confirmation page of an active RequireInactive client offers Revoke")
	}
	noLeak(t, cs, map[string][]byte{"client secret": []byte(secret), "rotated client secret": []byte(rotated)})
}

// Acceptance 2 (and 4, 5 on its pages): Kallithea's API keys page. Add a
// credential with a description and lifetime "1 day": its token, shown
// once, verifies at /v1/verify; a reload does not show it again; a
// credential whose expiresAt passed shows "Expired"; one deleted with
// kubectl disappears by itself; Remove after the confirmation: 401.
func TestConsoleKallitheaFlow(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c := &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "blog-app"},
		Spec: latchkeyv1alpha1.ApiClientSpec{Scopes: []string{"blogs"}, Permissions: []string{"blogs.read"}, Tenant: "2", DisplayName: "Blog app"}}
	if err := env.Client.Create(ctx, c); err != nil {
		t.Fatal(err)
	}
	past := metav1.NewTime(time.Now().Add(-2 * time.Hour))
	expired := &latchkeyv1alpha1.CredentialGrant{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "blog-app-old"},
		Spec: latchkeyv1alpha1.CredentialGrantSpec{ClientName: c.Name, Description: "last year's import", ExpiresAt: &past}}
	doomed := &latchkeyv1alpha1.CredentialGrant{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "blog-app-doomed"},
		Spec: latchkeyv1alpha1.CredentialGrantSpec{ClientName: c.Name, Description: "to be deleted with kubectl"}}
	for _, g := range []*latchkeyv1alpha1.CredentialGrant{expired, doomed} {
		if err := env.Client.Create(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	cs := startConsole(t, env.Config, f.ns)
	b := newBrowser(t, cs)
	page := "/clients/" + f.ns + "/" + c.Name + "/credentials"
	b.open(page)
	b.waitFor(`!!document.querySelector("tr[data-grant=blog-app-old] .expires")`)
	if got := b.text("tr[data-grant=blog-app-old] .expires"); !strings.HasPrefix(got, "Expired 2 hours ago") {
		t.Errorf("expired credential shows %q, want Expired 2 hours ago", got)
	}
	if got := b.text("tr[data-grant=blog-app-old] .status"); got != "Expired" {
		t.Errorf("expired credential's status %q, want Expired", got)
	}
	if got := b.text("tr[data-grant=blog-app-doomed] .expires"); got != "Never" {
		t.Errorf("credential without expiry shows %q, want Never", got)
	}

	// Add a credential: description and lifetime 1 day.
	b.do(chromedp.SendKeys(chromedp.CSS("#description"), "nightly import"),
		chromedp.SetValue(chromedp.CSS("#lifetime"), "24h"))
	b.submit("#add-credential")
	token := b.text("#new-token")
	if !strings.HasPrefix(token, "lk") {
		t.Fatalf("shown token %q", token)
	}
	if got := b.text("#secret-box"); !strings.Contains(got, "like a password") || !strings.Contains(got, "shown only once") {
		t.Errorf("the new token comes without the warning: %q", got)
	}
	copyButtons := eval[int](b, `document.querySelectorAll("button[data-copy=new-token]").length`)
	if copyButtons != 1 {
		t.Errorf("%d copy buttons for the token", copyButtons)
	}
	f.wantCode("new token at /v1/verify", http.StatusOK, func() int { return f.verify(bearer(token)) })
	grants := &latchkeyv1alpha1.CredentialGrantList{}
	if err := env.Client.List(ctx, grants, client.InNamespace(f.ns)); err != nil {
		t.Fatal(err)
	}
	var created *latchkeyv1alpha1.CredentialGrant
	for i := range grants.Items {
		if grants.Items[i].Spec.Description == "nightly import" {
			created = &grants.Items[i]
		}
	}
	if created == nil || created.Spec.ExpiresAt == nil {
		t.Fatalf("no grant with an expiry for the new credential: %v", grants.Items)
	}
	if d := time.Until(created.Spec.ExpiresAt.Time); d < 23*time.Hour || d > 25*time.Hour {
		t.Errorf("lifetime 1 day gave expiresAt in %s", d)
	}
	row := "tr[data-grant=" + created.Name + "]"
	b.waitFor(`!!document.querySelector("` + row + `")`)
	if got := b.text(row + " .expires"); got != "Expires: in 1 day" {
		t.Errorf("new credential shows %q, want Expires: in 1 day", got)
	}
	b.check("credential-created")

	// Reload: the token is not shown again.
	b.do(chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("h1")))
	if strings.Contains(b.html(), token) {
		t.Fatal("the token is shown again after a reload")
	}
	boxes := eval[int](b, `document.querySelectorAll("#secret-box").length`)
	if boxes != 0 {
		t.Error("the secret box is still there after a reload")
	}

	// Rotate: a new token, shown once; the old one stops working.
	b.submit(row + ` button[aria-label^="Rotate"]`)
	newToken := b.text("#new-token")
	if newToken == token || !strings.HasPrefix(newToken, "lk") {
		t.Fatalf("rotated token: same as before or malformed")
	}
	f.wantCode("rotated token at /v1/verify", http.StatusOK, func() int { return f.verify(bearer(newToken)) })
	f.wantCode("token replaced by rotation at /v1/verify", http.StatusUnauthorized, func() int { return f.verify(bearer(token)) })
	b.open(page)

	// Live: a credential deleted with kubectl disappears without a reload.
	eval[string](b, `window.marker = "same page"`)
	// After the refresh that follows the stream's connection: the row must
	// go because of the watch, not because the page was read late.
	b.waitFor(`!!document.querySelector("#live").dataset.refreshed`)
	time.Sleep(time.Second)
	if err := env.Client.Delete(ctx, doomed); err != nil {
		t.Fatal(err)
	}
	b.waitFor(`!document.querySelector("tr[data-grant=blog-app-doomed]") && window.marker === "same page"`)
	b.check("credentials")

	// Remove, after a confirmation naming it: the token gets 401.
	b.do(chromedp.Click(chromedp.CSS(row+` a[aria-label^="Remove"]`)), chromedp.WaitVisible(chromedp.CSS("#confirm-question")))
	if q := b.text("#confirm-question"); !strings.Contains(q, "nightly import") {
		t.Errorf("confirmation %q does not name the credential", q)
	}
	b.check("remove-confirm")
	b.submit("#confirm")
	f.wantCode("removed token at /v1/verify", http.StatusUnauthorized, func() int { return f.verify(bearer(newToken)) })
	b.waitFor(`!document.querySelector("` + row + `")`)
	if err := env.Client.Get(ctx, types.NamespacedName{Namespace: f.ns, Name: created.Name}, &latchkeyv1alpha1.CredentialGrant{}); !apierrors.IsNotFound(err) {
		t.Errorf("grant after Remove: %v", err)
	}
	noLeak(t, cs, map[string][]byte{"new token": []byte(token), "rotated token": []byte(newToken)})
}
