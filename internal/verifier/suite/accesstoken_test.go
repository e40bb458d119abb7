package suite_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	. "github.com/onsi/gomega"
	"golang.org/x/oauth2/clientcredentials"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/accesstoken"
	"github.com/latchkey-dev/latchkey/internal/backing"
	"github.com/latchkey-dev/latchkey/internal/operator"
)

// signingKeys reads the operator's key Secret as an administrator would.
func signingKeys(f *fixture) accesstoken.KeySet {
	f.t.Helper()
	s := &corev1.Secret{}
	f.g.Eventually(func() error {
		return env.Client.Get(f.ctx, types.NamespacedName{Namespace: f.opNs, Name: backing.SigningKeysSecretName}, s)
	}).Should(Succeed())
	ks, err := accesstoken.Unmarshal(s.Data)
	f.g.Expect(err).NotTo(HaveOccurred())
	return ks
}

func b64json(v any) string {
	raw, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(raw)
}

// Security I, acceptance 3: a token forged with a key derived from a backing
// token's hash, one signed by an unknown key, one with alg none, one whose
// exp - iat exceeds the TTL and one issued in the future: all 401 at verify
// and {"active":false} at introspection.
func TestForgedAccessTokens(t *testing.T) {
	f := newFixture(t)
	app := &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: "app"}, Spec: latchkeyv1alpha1.ApiClientSpec{
		Scopes: []string{"blogs"}, Permissions: []string{"blogs.read"}, Tenant: "2"}}
	rs := &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: "rs"}, Spec: latchkeyv1alpha1.ApiClientSpec{
		Scopes: []string{"system"}, Permissions: []string{"system.introspect"}}}
	f.create(app)
	f.create(rs)
	f.waitReady(app)
	f.waitReady(rs)
	as, rss := f.secret("app"), f.secret("rs")

	// A genuine token, to show the forgeries are refused for what they are.
	cfg := clientcredentials.Config{ClientID: as["client_id"], ClientSecret: as["client_secret"], TokenURL: f.url + "/oauth2/token"}
	tok, err := cfg.Token(context.Background())
	f.g.Expect(err).NotTo(HaveOccurred())
	f.g.Expect(f.verify(bearer(tok.AccessToken), "")).To(Equal(200))

	// What an attacker who can read backing tokens has: the hash.
	bt := &corev1.Secret{}
	f.g.Expect(env.Client.Get(f.ctx, types.NamespacedName{Namespace: f.opNs, Name: backing.Name(app.Status.TokenID)}, bt)).To(Succeed())
	hash := bt.Data[backing.KeyHash]
	ks := signingKeys(f)
	real, _ := ks.Signing()
	now := time.Now()
	claims := func(iat, exp time.Time) accesstoken.Claims {
		return accesstoken.Claims{Issuer: "https://latchkey-verifier." + f.opNs + ".svc:8082", Subject: as["client_id"], Audience: "latchkey",
			ClientID: as["client_id"], Scope: "blogs.read", JTI: "forged", IssuedAt: iat.Unix(), Expires: exp.Unix(), TokenID: app.Status.TokenID}
	}
	valid := claims(now, now.Add(30*time.Minute))
	// Sanity: the same claims signed with the real key are accepted, so each
	// forgery below fails for its own flaw.
	genuine, err := accesstoken.Sign(real, valid)
	f.g.Expect(err).NotTo(HaveOccurred())
	f.g.Expect(f.verify(bearer(genuine), "")).To(Equal(200))

	hs256 := func(key []byte) string {
		body := b64json(map[string]string{"alg": "HS256", "typ": "at+jwt", "kid": real.ID}) + "." + b64json(valid)
		m := hmac.New(sha256.New, key)
		m.Write([]byte(body))
		return body + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	// The old format: lka_<tokenID>.<claims>.<HMAC under a key from the hash>.
	oldKey := func() []byte {
		m := hmac.New(sha256.New, hash)
		m.Write([]byte("latchkey/access-token/v1"))
		return m.Sum(nil)
	}()
	oldBody := "lka_" + app.Status.TokenID + "." + b64json(map[string]any{"scp": []string{"blogs.read"}, "iat": now.Unix(), "exp": int64(1) << 40, "jti": "x"})
	oldMAC := hmac.New(sha256.New, oldKey)
	oldMAC.Write([]byte(oldBody))
	unknownPriv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	unknown := accesstoken.Key{ID: accesstoken.KeyID(&unknownPriv.PublicKey), Private: unknownPriv, CreatedAt: now}
	impostor := unknown
	impostor.ID = real.ID // a known kid over another key
	sign := func(k accesstoken.Key, c accesstoken.Claims) string {
		s, err := accesstoken.Sign(k, c)
		if err != nil && k.ID == real.ID && k.Private != real.Private {
			// Sign refuses a kid that does not match the key: assemble it by hand.
			h := b64json(map[string]string{"alg": "ES256", "typ": "at+jwt", "kid": k.ID}) + "." + b64json(c)
			other, _ := accesstoken.Sign(unknown, c)
			return h + "." + other[strings.LastIndex(other, ".")+1:]
		}
		f.g.Expect(err).NotTo(HaveOccurred())
		return s
	}

	for name, forged := range map[string]string{
		"HS256 keyed with the backing token's hash":       hs256(hash),
		"HS256 keyed with the old hash-derived key":       hs256(oldKey),
		"old lka_ format MACed with the hash-derived key": oldBody + "." + base64.RawURLEncoding.EncodeToString(oldMAC.Sum(nil)),
		"signed by an unknown key":                        sign(unknown, valid),
		"a known kid over another key's signature":        sign(impostor, valid),
		"alg none":                            b64json(map[string]string{"alg": "none", "typ": "at+jwt", "kid": real.ID}) + "." + b64json(valid) + ".",
		"exp - iat above the TTL (10 years)":  sign(real, claims(now, now.Add(10*365*24*time.Hour))),
		"exp - iat above the TTL by a minute": sign(real, claims(now, now.Add(time.Hour+time.Minute))),
		"iat in the future":                   sign(real, claims(now.Add(5*time.Minute), now.Add(30*time.Minute))),
		"expired":                             sign(real, claims(now.Add(-2*time.Hour), now.Add(-time.Hour))),
	} {
		t.Run(name, func(t *testing.T) {
			f := f.sub(t)
			f.g.Expect(f.verify(bearer(forged), "")).To(Equal(401))
			code, body := f.postForm("/oauth2/introspect", url.Values{"token": {forged}}, basic(rss["client_id"], rss["client_secret"]))
			f.g.Expect(code).To(Equal(200))
			f.g.Expect(body).To(Equal(map[string]any{"active": false}))
		})
	}
}

// Security I, acceptance 4: x/oauth2's client_credentials gets a token; a
// JWT library verifies it against /.well-known/jwks.json; Latchkey verifies
// it; deleting the client rejects it before expiry; after a key rotation,
// tokens signed by the old key keep verifying until they expire, new tokens
// carry the new kid, and the old key leaves the JWKS once its last token
// expired.
func TestAccessTokensOfflineAndRotation(t *testing.T) {
	var skew atomic.Int64 // the key manager's clock runs ahead by this much
	clock := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	const ttl = 8 * time.Second
	f := newFixture(t, func(o *operator.Options) { o.Verifier.AccessTokenTTL, o.Now = ttl, clock })
	app := &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: "app"}, Spec: latchkeyv1alpha1.ApiClientSpec{
		Scopes: []string{"blogs"}, Permissions: []string{"blogs.read"}, Tenant: "2"}}
	f.create(app)
	f.waitReady(app)
	as := f.secret("app")
	cfg := clientcredentials.Config{ClientID: as["client_id"], ClientSecret: as["client_secret"], TokenURL: f.url + "/oauth2/token"}

	jwks := func() *jose.JSONWebKeySet {
		resp := f.get("/.well-known/jwks.json", nil)
		defer func() { _ = resp.Body.Close() }()
		f.g.Expect(resp.StatusCode).To(Equal(200))
		raw, _ := io.ReadAll(resp.Body)
		var set jose.JSONWebKeySet
		f.g.Expect(json.Unmarshal(raw, &set)).To(Succeed())
		return &set
	}
	// offline verifies tok with go-jose against the published keys only.
	offline := func(tok string) (string, error) {
		parsed, err := josejwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			return "", err
		}
		kid := parsed.Headers[0].KeyID
		keys := jwks().Key(kid)
		if len(keys) == 0 {
			return kid, errors.New("kid not in the JWKS")
		}
		var c josejwt.Claims
		if err := parsed.Claims(keys[0].Key, &c); err != nil {
			return kid, err
		}
		return kid, c.ValidateWithLeeway(josejwt.Expected{Issuer: "https://latchkey-verifier." + f.opNs + ".svc:8082",
			Subject: as["client_id"], AnyAudience: josejwt.Audience{"latchkey"}, Time: time.Now()}, 0)
	}

	t1, err := cfg.Token(context.Background())
	f.g.Expect(err).NotTo(HaveOccurred())
	kid1, err := offline(t1.AccessToken)
	f.g.Expect(err).NotTo(HaveOccurred(), "go-jose verifies the token against the JWKS")
	f.g.Expect(f.verify(bearer(t1.AccessToken), "")).To(Equal(200))
	// The metadata document points at the JWKS and the token endpoint.
	resp := f.get("/.well-known/oauth-authorization-server", nil)
	var md map[string]any
	f.g.Expect(json.NewDecoder(resp.Body).Decode(&md)).To(Succeed())
	_ = resp.Body.Close()
	f.g.Expect(md).To(HaveKeyWithValue("jwks_uri", HaveSuffix("/.well-known/jwks.json")))
	f.g.Expect(md).To(HaveKeyWithValue("grant_types_supported", ContainElement("client_credentials")))

	// Rotation on request.
	keySecret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: backing.SigningKeysSecretName, Namespace: f.opNs}}
	f.g.Expect(env.Client.Patch(f.ctx, keySecret, client.RawPatch(types.MergePatchType,
		[]byte(`{"metadata":{"annotations":{"latchkey.dev/rotate":"now"}}}`)))).To(Succeed())
	f.g.Eventually(func() int { return len(jwks().Keys) }).Should(Equal(2))
	var kid2 string
	f.g.Eventually(func(g Gomega) {
		t2, err := cfg.Token(context.Background())
		g.Expect(err).NotTo(HaveOccurred())
		kid2, err = offline(t2.AccessToken)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(kid2).NotTo(Equal(kid1), "new tokens use the new key")
		g.Expect(f.verify(bearer(t2.AccessToken), "")).To(Equal(200))
	}).Should(Succeed())
	f.g.Expect(f.verify(bearer(t1.AccessToken), "")).To(Equal(200), "the old key's token still verifies")
	_, err = offline(t1.AccessToken)
	f.g.Expect(err).NotTo(HaveOccurred(), "and offline too: the old key is still published")

	// The old token expires; only then may its key go.
	f.g.Eventually(func() int { return f.verify(bearer(t1.AccessToken), "") }).WithTimeout(ttl + 5*time.Second).Should(Equal(401))
	f.g.Expect(jwks().Key(kid1)).NotTo(BeEmpty(), "kept until the key manager sees its last token expired")
	skew.Store(int64(ttl + accesstoken.IssuedAtLeeway + time.Second))
	f.g.Expect(env.Client.Patch(f.ctx, keySecret, client.RawPatch(types.MergePatchType,
		[]byte(`{"metadata":{"labels":{"poke":"1"}}}`)))).To(Succeed())
	f.g.Eventually(func() []jose.JSONWebKey { return jwks().Key(kid1) }).Should(BeEmpty())
	f.g.Expect(jwks().Key(kid2)).NotTo(BeEmpty())

	// Deleting the client rejects an unexpired token at once.
	t3, err := cfg.Token(context.Background())
	f.g.Expect(err).NotTo(HaveOccurred())
	f.g.Expect(f.verify(bearer(t3.AccessToken), "")).To(Equal(200))
	f.g.Expect(env.Client.Delete(f.ctx, app)).To(Succeed())
	f.g.Eventually(func() int { return f.verify(bearer(t3.AccessToken), "") }).WithTimeout(2 * time.Second).Should(Equal(401))
	f.g.Expect(t3.Expiry).To(BeTemporally(">", time.Now()))
}
