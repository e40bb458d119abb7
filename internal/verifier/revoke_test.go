package verifier

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/latchkey-dev/latchkey/internal/backing"
	"github.com/latchkey-dev/latchkey/internal/token"
)

// revokeServer is memServer with a fake API client for the records.
func revokeServer(t testing.TB) (*Server, string, *memWorld, client.Client) {
	s, tok, w := memServer(t)
	c := fake.NewClientBuilder().Build()
	s.writer = c
	return s, tok, w, c
}

func postRevoke(s *Server, body, contentType string, h http.Header) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/oauth2/revoke", strings.NewReader(body))
	r.Header["Content-Type"] = []string{contentType}
	for k, v := range h {
		r.Header[k] = v
	}
	rec := httptest.NewRecorder()
	withSource(s).ServeHTTP(rec, r)
	return rec
}

func records(t testing.TB, c client.Client) []corev1.ConfigMap {
	t.Helper()
	var list corev1.ConfigMapList
	if err := c.List(context.Background(), &list); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// A revoked token's record is named from its id, holds no secret, and once
// the informer holds it the token is rejected on the hot path; the client's
// other credential is not.
func TestRevokeWritesRecordThatDenies(t *testing.T) {
	s, tok, w, c := revokeServer(t)
	form := url.Values{"token": {tok}}.Encode()
	rec := postRevoke(s, form, "application/x-www-form-urlencoded", http.Header{"X-Forwarded-For": {"198.51.100.7"}})
	if rec.Code != http.StatusOK || rec.Body.Len() != 0 {
		t.Fatalf("revoke: %d %q", rec.Code, rec.Body.String())
	}
	recs := records(t, c)
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1", len(recs))
	}
	parsed, _ := token.Parse(tok)
	rev, err := backing.RevocationFromConfigMap(&recs[0])
	if err != nil {
		t.Fatal(err)
	}
	if rev.Kind != backing.RevokedToken || rev.TokenID != parsed.ID || rev.OwnerName != "g" || !strings.HasPrefix(rev.From, "198.51.100.7") {
		t.Fatalf("record %+v", rev)
	}
	if recs[0].Name != backing.RevocationName(backing.RevokedToken, parsed.ID) || len(recs[0].Data) != 0 ||
		strings.Contains(recs[0].String(), parsed.Secret) {
		t.Fatalf("record %s holds more than the id", recs[0].Name)
	}

	verify := func(h http.Header) int {
		r := httptest.NewRequest(http.MethodGet, "/v1/verify", nil)
		r.Header = h
		rr := httptest.NewRecorder()
		s.ServeHTTP(rr, r)
		return rr.Code
	}
	bearerH := http.Header{"Authorization": {"Bearer " + tok}}
	if got := verify(bearerH); got != http.StatusOK {
		t.Fatalf("before the informer delivers the record: %d", got)
	}
	if err := s.auth.revocations.Add(&recs[0]); err != nil {
		t.Fatal(err)
	}
	if got := verify(bearerH); got != http.StatusUnauthorized {
		t.Fatalf("with the record: %d, want 401", got)
	}
	r := httptest.NewRequest(http.MethodGet, "/v1/verify", nil)
	r.SetBasicAuth(w.clientID, w.clientSecret)
	if got := verify(r.Header); got != http.StatusOK {
		t.Fatalf("the client's secret: %d, want 200", got)
	}
	// Revoking it again writes nothing.
	if rec := postRevoke(s, form, "application/x-www-form-urlencoded", nil); rec.Code != http.StatusOK {
		t.Fatalf("again: %d", rec.Code)
	}
	if n := len(records(t, c)); n != 1 {
		t.Fatalf("%d records after revoking twice", n)
	}
}

// FuzzRevokeForm sends arbitrary bodies, content types and client
// authentication to POST /oauth2/revoke over an in-memory store: it never
// panics; answers only 200 (empty body), 400 or 401; never echoes the token;
// and writes a record only for the two credentials the store holds, sent
// whole.
func FuzzRevokeForm(f *testing.F) {
	s, tok, w, c := revokeServer(f)
	pair := w.clientID + ":" + w.clientSecret
	const form = "application/x-www-form-urlencoded"
	f.Add("token="+url.QueryEscape(tok), form, "")
	f.Add("token="+url.QueryEscape(pair)+"&token_type_hint=access_token", form, "")
	f.Add("token=%zz&token=", form, "")
	f.Add("token=a&token=b", form, "")
	f.Add(`{"token":"x"}`, "application/json", "")
	f.Add("token=lk_x", form, "Basic !!!")
	f.Add("token=x", form, "Bearer "+tok)
	f.Add("token=eyJ.eyJ.sig", form+"; charset=utf-8", "")
	f.Add("token="+strings.Repeat("a", 9000), form, "")
	f.Fuzz(func(t *testing.T, body, contentType, authorization string) {
		before := len(records(t, c))
		h := http.Header{}
		if authorization != "" {
			h["Authorization"] = []string{authorization}
		}
		rec := postRevoke(s, body, contentType, h)
		switch rec.Code {
		case http.StatusOK:
			if rec.Body.Len() != 0 {
				t.Fatalf("200 with a body: %q", rec.Body.String())
			}
		case http.StatusBadRequest, http.StatusUnauthorized:
		default:
			t.Fatalf("status %d", rec.Code)
		}
		vals, _ := url.ParseQuery(body)
		sent := vals.Get("token")
		if len(sent) >= 8 && strings.Contains(rec.Body.String(), sent) {
			t.Fatalf("the answer echoes the token")
		}
		if after := len(records(t, c)); after != before && sent != tok && sent != pair {
			t.Fatalf("a record was written for a token the store does not hold")
		}
	})
}
