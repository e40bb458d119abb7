package suite_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
)

// Acceptance 3: a real OAuth2 client library obtains a token; it verifies
// and introspects; deleting the ApiClient kills it before it expires.
func TestOAuth2ClientCredentials(t *testing.T) {
	f := newFixture(t)
	app := &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: "app"}, Spec: latchkeyv1alpha1.ApiClientSpec{
		Scopes: []string{"blogs"}, Permissions: []string{"blogs.read", "blogs.write"}, Tenant: "2"}}
	// A resource server allowed to introspect.
	rs := &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: "resource-server"}, Spec: latchkeyv1alpha1.ApiClientSpec{
		Scopes: []string{"system"}, Permissions: []string{"system.introspect"}}}
	f.create(app)
	f.create(rs)
	f.waitReady(app)
	f.waitReady(rs)
	appSecret, rsSecret := f.secret("app"), f.secret("resource-server")

	for _, style := range []oauth2.AuthStyle{oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams} {
		cfg := clientcredentials.Config{ClientID: appSecret["client_id"], ClientSecret: appSecret["client_secret"],
			TokenURL: f.url + "/oauth2/token", Scopes: []string{"blogs.read", "system.other"}, AuthStyle: style}
		tok, err := cfg.Token(context.Background())
		f.g.Expect(err).NotTo(HaveOccurred())
		f.g.Expect(tok.TokenType).To(Equal("Bearer"))
		f.g.Expect(tok.Expiry).To(BeTemporally("~", time.Now().Add(time.Hour), time.Minute))
		f.g.Expect(tok.Extra("scope")).To(Equal("blogs.read"), "the requested scope is narrowed to the client's permissions")

		h := bearer(tok.AccessToken)
		f.g.Expect(f.verify(h, "")).To(Equal(200))
		f.g.Expect(f.verify(with(h, "X-Latchkey-Permission", "blogs.read"), "")).To(Equal(200))
		f.g.Expect(f.verify(with(h, "X-Latchkey-Permission", "blogs.write"), "")).To(Equal(403), "narrowed scope holds")
	}

	cfg := clientcredentials.Config{ClientID: appSecret["client_id"], ClientSecret: appSecret["client_secret"], TokenURL: f.url + "/oauth2/token"}
	tok, err := cfg.Token(context.Background())
	f.g.Expect(err).NotTo(HaveOccurred())
	access := tok.AccessToken

	// Introspection: authenticated callers with the permission only.
	code, body := f.postForm("/oauth2/introspect", url.Values{"token": {access}}, basic(rsSecret["client_id"], rsSecret["client_secret"]))
	f.g.Expect(code).To(Equal(200))
	f.g.Expect(body).To(HaveKeyWithValue("active", true))
	f.g.Expect(body).To(HaveKeyWithValue("client_id", appSecret["client_id"]))
	f.g.Expect(body).To(HaveKeyWithValue("scope", "blogs.read blogs.write"))
	f.g.Expect(body).To(HaveKey("exp"))
	code, _ = f.postForm("/oauth2/introspect", url.Values{"token": {access}}, nil)
	f.g.Expect(code).To(Equal(401), "unauthenticated introspection")
	code, _ = f.postForm("/oauth2/introspect", url.Values{"token": {access}}, basic(appSecret["client_id"], appSecret["client_secret"]))
	f.g.Expect(code).To(Equal(403), "a caller without the introspection permission")
	code, body = f.postForm("/oauth2/introspect", url.Values{"token": {"lk_garbage"}}, basic(rsSecret["client_id"], rsSecret["client_secret"]))
	f.g.Expect(code).To(Equal(200))
	f.g.Expect(body).To(Equal(map[string]any{"active": false}))

	// Wrong client secret: invalid_client.
	bad := clientcredentials.Config{ClientID: appSecret["client_id"], ClientSecret: "nope", TokenURL: f.url + "/oauth2/token"}
	_, err = bad.Token(context.Background())
	f.g.Expect(err).To(MatchError(ContainSubstring("invalid_client")))
	code, body = f.postForm("/oauth2/token", url.Values{"grant_type": {"password"}}, basic(appSecret["client_id"], appSecret["client_secret"]))
	f.g.Expect(code).To(Equal(http.StatusBadRequest))
	f.g.Expect(body).To(HaveKeyWithValue("error", "unsupported_grant_type"))

	// Deleting the client rejects its unexpired access token.
	f.g.Expect(env.Client.Delete(f.ctx, app)).To(Succeed())
	f.g.Eventually(func() int { return f.verify(bearer(access), "") }).WithTimeout(2 * time.Second).Should(Equal(401))
	code, body = f.postForm("/oauth2/introspect", url.Values{"token": {access}}, basic(rsSecret["client_id"], rsSecret["client_secret"]))
	f.g.Expect(code).To(Equal(200))
	f.g.Expect(body).To(Equal(map[string]any{"active": false}))
	f.g.Expect(tok.Expiry).To(BeTemporally(">", time.Now()), "rejected although not expired")
}

// Deactivating the client, or rotating its secret without a grace period,
// also invalidates its access tokens.
func TestAccessTokenFollowsClient(t *testing.T) {
	f := newFixture(t)
	app := &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: "app"}, Spec: latchkeyv1alpha1.ApiClientSpec{
		Scopes: []string{"system"}, Permissions: []string{"system.read"}}}
	f.create(app)
	f.waitReady(app)
	s := f.secret("app")
	cfg := clientcredentials.Config{ClientID: s["client_id"], ClientSecret: s["client_secret"], TokenURL: f.url + "/oauth2/token"}
	tok, err := cfg.Token(context.Background())
	f.g.Expect(err).NotTo(HaveOccurred())
	h := bearer(tok.AccessToken)
	f.g.Expect(f.verify(h, "")).To(Equal(200))

	setActive(f, "app", false)
	f.g.Eventually(func() int { return f.verify(h, "") }).Should(Equal(401))
	setActive(f, "app", true)
	f.g.Eventually(func() int { return f.verify(h, "") }).Should(Equal(200))

	f.g.Expect(env.Client.Patch(f.ctx, app, client.RawPatch("application/merge-patch+json",
		[]byte(fmt.Sprintf(`{"metadata":{"annotations":{"latchkey.dev/rotate":%q}}}`, time.Now().String()))))).To(Succeed())
	f.g.Eventually(func() int { return f.verify(h, "") }).Should(Equal(401))
}
