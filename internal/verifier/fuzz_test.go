package verifier

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzCredentialFrom fuzzes credential extraction from the request headers
// (Authorization Bearer and Basic, X-API-Key): it never panics, a Basic
// credential always has a user and a password, and whatever it extracts is
// a substring of what was sent (nothing is invented).
func FuzzCredentialFrom(f *testing.F) {
	for _, seed := range [][2]string{
		{"Bearer lk_abcdefghijklmnop_" + strings.Repeat("A", 43) + "000000", ""},
		{"Basic " + base64.StdEncoding.EncodeToString([]byte("id_x:key_secret")), ""},
		{"Basic !!!", ""}, {"Basic " + base64.StdEncoding.EncodeToString([]byte(":")), ""},
		{"", "keyid:keysecret"}, {"", "lk_token"}, {"bearer  x ", ""}, {"Digest x", ""}, {"Bearer", ""}, {"", ":"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, authorization, apiKey string) {
		r := httptest.NewRequest(http.MethodGet, "/v1/verify", nil)
		if authorization != "" {
			r.Header["Authorization"] = []string{authorization}
		}
		if apiKey != "" {
			r.Header["X-Api-Key"] = []string{apiKey}
		}
		p, err := credentialFrom(r)
		if err != nil {
			if o := outcomeOf(err); o != OutcomeMalformed && o != OutcomeMissing {
				t.Fatalf("extraction failed with %s", o)
			}
			return
		}
		sent := authorization + apiKey
		if scheme, value, ok := strings.Cut(authorization, " "); ok && strings.EqualFold(scheme, "Basic") {
			if d, derr := base64.StdEncoding.DecodeString(strings.TrimSpace(value)); derr == nil {
				sent += string(d)
			}
		}
		if p.basic {
			if p.user == "" && authorization != "" || p.pass == "" && authorization != "" {
				t.Fatalf("Basic credential without user or password")
			}
			if !strings.Contains(sent, p.user) || !strings.Contains(sent, p.pass) {
				t.Fatalf("extracted a user or password that was not sent")
			}
		} else if p.bearer == "" || !strings.Contains(sent, p.bearer) {
			t.Fatalf("extracted a bearer value that was not sent")
		}
	})
}

// FuzzVerifyRequest sends arbitrary credentials and requirements through the
// whole forward-auth handler over an in-memory store: it never panics,
// answers only 200, 401 or 403, and 200 only for the one valid credential
// (the grant's token, or the client's id and secret).
func FuzzVerifyRequest(f *testing.F) {
	s, tok, w := memServer(f)
	valid := map[string]bool{
		"Bearer " + tok: true,
		"Basic " + base64.StdEncoding.EncodeToString([]byte(w.clientID+":"+w.clientSecret)): true,
	}
	f.Add("Bearer "+tok, "", "blogs.read", "")
	f.Add("Bearer "+tok[:len(tok)-1]+"x", "", "", "")
	f.Add("", tok, "", "2")
	f.Add("Basic "+base64.StdEncoding.EncodeToString([]byte(w.clientID+":"+w.clientSecret)), "", "", "")
	f.Add("Basic "+base64.StdEncoding.EncodeToString([]byte(w.clientID+":x")), "", "", "")
	f.Add("Bearer eyJhbGciOiJub25lIn0.eyJ9.", "", "", "")
	f.Fuzz(func(t *testing.T, authorization, apiKey, permission, tenant string) {
		r := httptest.NewRequest(http.MethodGet, "/v1/verify", nil)
		for k, v := range map[string]string{"Authorization": authorization, "X-Api-Key": apiKey,
			HeaderRequirePermission: permission, HeaderRequireTenant: tenant} {
			if v != "" {
				r.Header[k] = []string{v}
			}
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, r)
		switch rec.Code {
		case http.StatusOK:
			validKey := authorization == "" && (apiKey == tok || apiKey == w.clientID+":"+w.clientSecret)
			if !valid[authorization] && !validKey {
				t.Fatalf("200 for a credential that is not the valid one")
			}
		case http.StatusUnauthorized, http.StatusForbidden, http.StatusTooManyRequests:
		default:
			t.Fatalf("status %d", rec.Code)
		}
	})
}

// FuzzFormEndpoints posts arbitrary bodies to the endpoints that parse
// forms (/oauth2/token, /oauth2/introspect): they never panic, never fail
// with a 5xx, and issue a token only to the valid client.
func FuzzFormEndpoints(f *testing.F) {
	s, tok, w := memServer(f)
	s.opts.IntrospectionPermission = "blogs.read"
	good := "Basic " + base64.StdEncoding.EncodeToString([]byte(w.clientID+":"+w.clientSecret))
	f.Add(false, "grant_type=client_credentials&scope=blogs.read", "application/x-www-form-urlencoded", good)
	f.Add(false, "grant_type=client_credentials&client_id="+w.clientID+"&client_secret=x", "application/x-www-form-urlencoded", "")
	f.Add(true, "token="+tok, "application/x-www-form-urlencoded", "Bearer "+tok)
	f.Add(true, "token=%zz&token=", "application/x-www-form-urlencoded", "Bearer "+tok)
	f.Add(false, "{}", "application/json", good)
	f.Add(false, strings.Repeat("a=b&", 1000), "application/x-www-form-urlencoded; charset=utf-8", good)
	f.Fuzz(func(t *testing.T, introspect bool, body, contentType, authorization string) {
		path := "/oauth2/token"
		if introspect {
			path = "/oauth2/introspect"
		}
		r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		r.Header["Content-Type"] = []string{contentType}
		if authorization != "" {
			r.Header["Authorization"] = []string{authorization}
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, r)
		noKeyYet := rec.Code == http.StatusServiceUnavailable && !introspect
		if rec.Code >= 500 && !noKeyYet {
			// 503 only when a token would be signed and no key exists yet.
			t.Fatalf("status %d", rec.Code)
		}
		if !introspect && rec.Code == http.StatusOK {
			t.Fatalf("the in-memory store has no signing key: no token can be issued")
		}
		if !introspect && rec.Code == http.StatusServiceUnavailable && authorization != good && !strings.Contains(body, w.clientSecret) {
			t.Fatalf("reached signing without the valid client's secret")
		}
	})
}
