package verifier

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	"github.com/latchkey-dev/latchkey/internal/accesstoken"
	"github.com/latchkey-dev/latchkey/internal/backing"
	"github.com/latchkey-dev/latchkey/internal/token"
)

// RFC 7009 token revocation, for leak response: whoever holds a credential
// may destroy it (a secret scanner, the owner, the person who pasted it in a
// chat). See "Revocation" in docs/verifier.md and docs/security.md.
//
// The verifier does not delete anything: it proves possession (the same
// checks, rate limits and hashing gates as authentication), then creates a
// revocation record (internal/backing, a ConfigMap in the token namespace).
// Every replica rejects the credential as soon as its informer delivers the
// record; the operator's leader then deletes the backing token, which makes
// the owner's controller issue a fresh credential into the same consumer
// Secret, and records an Event naming the token id and the source address.
// So the verifier's only new right is creating ConfigMaps in the token
// namespace, which can deny but never forge a credential.

// revoke answers POST /oauth2/revoke. The token is the form parameter token:
// a grant token (lk_…), a JWT access token, or a client_id:client_secret or
// keyId:keySecret pair, as /oauth2/introspect takes them. token_type_hint is
// accepted and ignored (RFC 7009 §2.1 lets the server search every type).
//
// 200 with an empty body for every well-formed request, whether the token
// was valid, unknown, expired or already revoked (RFC 7009 §2.2: no
// enumeration); 400 invalid_request for a malformed request; 401
// invalid_client when client authentication was sent and fails; 429 when the
// failure limiter of user-chosen secrets is exhausted; 503 when the verifier
// cannot act (fail closed: the caller must retry, it is never told "done"
// when nothing was done).
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) Outcome {
	tok, desc := revokeForm(r)
	if desc != "" {
		writeError(w, http.StatusBadRequest, "invalid_request", desc)
		return OutcomeMalformed
	}
	if r.Header.Get("Authorization") != "" {
		// Client authentication is optional (possession of the token is the
		// authority); when sent it must be right, so a misconfigured client
		// learns it. It does not narrow what may be revoked: the holder of
		// another client's token could revoke it without authenticating.
		p, err := credentialFrom(r)
		if err == nil && !p.basic {
			err = reject(OutcomeMalformed)
		}
		if err == nil {
			_, err = s.auth.clientSecret(r.Context(), p.user, p.pass)
		}
		if err != nil {
			if o := outcomeOf(err); credentialRejected(o) {
				return s.invalidClient(w, o)
			}
			return s.fail(w, r, err)
		}
	}
	rev, err := s.auth.possession(r.Context(), presentedToken(tok))
	if err != nil {
		o := outcomeOf(err)
		if credentialRejected(o) {
			// Nothing to revoke: unknown, wrong, expired or revoked already.
			w.WriteHeader(http.StatusOK)
			return o
		}
		return s.fail(w, r, err)
	}
	rev.From, rev.At = remoteAddr(r), s.auth.now()
	if peer, _, err := net.SplitHostPort(r.RemoteAddr); err == nil && peer != rev.From {
		rev.From += " via " + peer
	}
	err = s.writer.Create(r.Context(), rev.ConfigMap(s.auth.namespace))
	if err != nil && !apierrors.IsAlreadyExists(err) {
		// The record is the revocation: without it nothing happened.
		s.log.Error(err, "Revocation failed closed", "kind", rev.Kind, "tokenID", rev.TokenID, "jti", rev.JTI)
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "the verifier could not record the revocation; retry")
		return OutcomeUnavailable
	}
	s.log.Info("Credential revoked", "kind", rev.Kind, "tokenID", rev.TokenID, "jti", rev.JTI,
		"owner", rev.OwnerNamespace+"/"+rev.OwnerName, "from", rev.From)
	w.WriteHeader(http.StatusOK)
	return OutcomeValid
}

// revokeForm reads the revocation request's form, or says what is wrong with
// it: an application/x-www-form-urlencoded body (parseForm's rules) with a
// non-empty token of at most maxRevokeToken bytes, and an optional
// token_type_hint.
func revokeForm(r *http.Request) (tok, desc string) {
	if desc := parseForm(r); desc != "" {
		return "", desc
	}
	tok = r.PostForm.Get("token")
	switch {
	case tok == "":
		return "", "send the token to revoke as the form parameter 'token'"
	case len(tok) > maxRevokeToken:
		return "", "the token is too long to be one Latchkey issued"
	case strings.ContainsAny(tok, "\r\n\x00"):
		return "", "the token holds a control character: send it as issued, without a line break"
	}
	return tok, ""
}

// maxRevokeToken bounds the token parameter: an access token is about 700
// bytes, a user-chosen client secret at most a few hundred.
const maxRevokeToken = 8 << 10

// presentedToken reads a token as /oauth2/introspect does: a pair
// id:secret, else a bearer value.
func presentedToken(tok string) presented {
	if user, pass, ok := strings.Cut(tok, ":"); ok {
		return presented{user: user, pass: pass, basic: true}
	}
	return presented{bearer: tok}
}

// possession proves that p is a credential Latchkey issued and that still
// works on its own (not expired, not revoked), and returns the record that
// revokes it. The owner's state does not matter: a leaked secret of an
// inactive client is revoked too, before someone activates the client. A
// rejection means there is nothing to revoke.
func (a *authenticator) possession(ctx context.Context, p presented) (backing.Revocation, error) {
	switch {
	case p.basic:
		if p.user == "" || p.pass == "" {
			return backing.Revocation{}, reject(OutcomeMalformed)
		}
		if token.ValidTokenID(p.user) {
			// A key-auth / basic-auth grant, named by its token id.
			rev, err := a.grantPossession(ctx, p.user, p.pass)
			if outcomeOf(err) != OutcomeUnknown {
				return rev, err
			}
		}
		tokens, err := a.clientSecretTokens(ctx, p.user)
		if err != nil {
			return backing.Revocation{}, err
		}
		if len(tokens) == 0 {
			return backing.Revocation{}, reject(OutcomeUnknown)
		}
		// The limiter and the slow-hash gate of authentication: a
		// user-chosen secret is as hard to guess here as anywhere.
		m, err := a.match(ctx, p.user, tokens, p.pass)
		if err != nil {
			return backing.Revocation{}, err
		}
		for _, t := range m {
			if t != nil {
				// During a rotation's grace period this may be the
				// retiring secret: that one alone is revoked.
				return a.tokenRevocation(ctx, *t)
			}
		}
		return backing.Revocation{}, reject(OutcomeWrongSecret)
	case strings.HasPrefix(p.bearer, token.Prefix):
		t, err := token.Parse(p.bearer)
		if err != nil {
			return backing.Revocation{}, reject(OutcomeMalformed)
		}
		return a.grantPossession(ctx, t.ID, t.Secret)
	case accesstoken.LooksLike(p.bearer):
		return a.accessPossession(ctx, p.bearer)
	default:
		return backing.Revocation{}, reject(OutcomeMalformed)
	}
}

// grantPossession checks a grant's token id and secret.
func (a *authenticator) grantPossession(ctx context.Context, tokenID, secret string) (backing.Revocation, error) {
	t, err := a.token(ctx, tokenID)
	if err != nil {
		return backing.Revocation{}, err
	}
	if t.OwnerKind != backing.KindCredentialGrant {
		return backing.Revocation{}, reject(OutcomeUnknown)
	}
	m, err := a.match(ctx, tokenID, []backing.Token{t}, secret)
	if err != nil {
		return backing.Revocation{}, err
	}
	if m[0] == nil {
		return backing.Revocation{}, reject(OutcomeWrongSecret)
	}
	return a.tokenRevocation(ctx, t)
}

// tokenRevocation is the record revoking a backing token whose secret was
// proven, or a rejection when it no longer works anyway.
func (a *authenticator) tokenRevocation(ctx context.Context, t backing.Token) (backing.Revocation, error) {
	if err := tokenValid(t, a.now()); err != nil {
		return backing.Revocation{}, err
	}
	if err := a.revoked(ctx, backing.RevokedToken, t.ID); err != nil {
		return backing.Revocation{}, err
	}
	return backing.Revocation{Kind: backing.RevokedToken, TokenID: t.ID, OwnerKind: t.OwnerKind,
		OwnerNamespace: t.OwnerNamespace, OwnerName: t.OwnerName, OwnerUID: t.OwnerUID, ClientID: t.ClientID}, nil
}

// accessPossession checks an access token's signature and lifetime and
// returns the record revoking its jti until its exp.
func (a *authenticator) accessPossession(ctx context.Context, raw string) (backing.Revocation, error) {
	keys, err := a.keys(ctx)
	if err != nil {
		if errors.Is(err, errNoKeys) {
			return backing.Revocation{}, reject(OutcomeWrongSecret)
		}
		return backing.Revocation{}, err
	}
	c, err := accesstoken.Parse(raw, keys.set.PublicKey, a.issuer, a.now(), a.accessTTL)
	switch {
	case errors.Is(err, accesstoken.ErrExpired):
		return backing.Revocation{}, reject(OutcomeExpired)
	case errors.Is(err, accesstoken.ErrMalformed):
		return backing.Revocation{}, reject(OutcomeMalformed)
	case err != nil:
		return backing.Revocation{}, reject(OutcomeWrongSecret)
	}
	if err := a.revoked(ctx, backing.RevokedAccessToken, c.JTI); err != nil {
		return backing.Revocation{}, err
	}
	exp := time.Unix(c.Expires, 0).UTC()
	rev := backing.Revocation{Kind: backing.RevokedAccessToken, JTI: c.JTI, TokenID: c.TokenID, ClientID: c.ClientID, ExpiresAt: &exp}
	// The owner, for the Event; a token whose client secret is gone is
	// rejected already, but revoking it costs one small record until exp.
	if t, err := a.token(ctx, c.TokenID); err == nil && t.ClientID == c.ClientID {
		rev.OwnerKind, rev.OwnerNamespace, rev.OwnerName, rev.OwnerUID = t.OwnerKind, t.OwnerNamespace, t.OwnerName, t.OwnerUID
	}
	return rev, nil
}

// revoked rejects (OutcomeRevoked) a subject (a backing token's id or an
// access token's jti) that has a revocation record.
func (l lookup) revoked(ctx context.Context, kind, subject string) error {
	if l.revocations != nil {
		// The hot path: one indexer lookup, no error built for a miss.
		_, ok, err := l.revocations.GetByKey(backing.RevocationKey(l.namespace, kind, subject))
		if err != nil {
			return err
		}
		if ok {
			return reject(OutcomeRevoked)
		}
		return nil
	}
	cm := &corev1.ConfigMap{}
	err := l.cache.Get(ctx, types.NamespacedName{Namespace: l.namespace, Name: backing.RevocationName(kind, subject)}, cm)
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return err
	}
	return reject(OutcomeRevoked)
}
