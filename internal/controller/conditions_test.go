package controller

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
)

// want is one expected condition: status and reason.
type want struct {
	status metav1.ConditionStatus
	reason string
}

var (
	T = metav1.ConditionTrue
	F = metav1.ConditionFalse
)

func TestClientConditions(t *testing.T) {
	issued := clientFacts{SecretName: "s", Issued: true, Active: true}
	with := func(mod func(*clientFacts)) clientFacts { f := issued; mod(&f); return f }
	for _, tc := range []struct {
		name  string
		facts clientFacts
		want  map[string]want // by type; a type absent here must be absent
	}{
		{"issued and active", issued, map[string]want{
			latchkeyv1alpha1.ConditionReady:  {T, latchkeyv1alpha1.ReasonIssued},
			latchkeyv1alpha1.ConditionActive: {T, latchkeyv1alpha1.ReasonActive}}},
		{"deactivated: still issued", with(func(f *clientFacts) { f.Active = false }), map[string]want{
			latchkeyv1alpha1.ConditionReady:  {T, latchkeyv1alpha1.ReasonIssued},
			latchkeyv1alpha1.ConditionActive: {F, latchkeyv1alpha1.ReasonDeactivated}}},
		{"referenced Secret missing: waits, not stalled", with(func(f *clientFacts) {
			f.Issued, f.NotReadyReason, f.NotReadyMessage = false, latchkeyv1alpha1.ReasonSecretRefNotFound, "create it"
		}), map[string]want{
			latchkeyv1alpha1.ConditionReady:  {F, latchkeyv1alpha1.ReasonSecretRefNotFound},
			latchkeyv1alpha1.ConditionActive: {T, latchkeyv1alpha1.ReasonActive}}},
		{"foreign Secret: stalled", with(func(f *clientFacts) {
			f.NotReadyReason, f.NotReadyMessage = latchkeyv1alpha1.ReasonSecretConflict, "delete it"
		}), map[string]want{
			latchkeyv1alpha1.ConditionReady:   {F, latchkeyv1alpha1.ReasonSecretConflict},
			latchkeyv1alpha1.ConditionActive:  {T, latchkeyv1alpha1.ReasonActive},
			latchkeyv1alpha1.ConditionStalled: {T, latchkeyv1alpha1.ReasonSecretConflict}}},
		{"client id held by another: stalled", with(func(f *clientFacts) {
			f.Issued, f.NotReadyReason, f.NotReadyMessage = false, latchkeyv1alpha1.ReasonClientIDConflict, "pick another"
		}), map[string]want{
			latchkeyv1alpha1.ConditionReady:   {F, latchkeyv1alpha1.ReasonClientIDConflict},
			latchkeyv1alpha1.ConditionActive:  {T, latchkeyv1alpha1.ReasonActive},
			latchkeyv1alpha1.ConditionStalled: {T, latchkeyv1alpha1.ReasonClientIDConflict}}},
		{"an error: retried, not stalled", with(func(f *clientFacts) {
			f.NotReadyReason, f.NotReadyMessage = latchkeyv1alpha1.ReasonIssueFailed, "boom"
		}), map[string]want{
			latchkeyv1alpha1.ConditionReady:  {F, latchkeyv1alpha1.ReasonIssueFailed},
			latchkeyv1alpha1.ConditionActive: {T, latchkeyv1alpha1.ReasonActive}}},
		{"nothing issued and no reason given: still a reason", with(func(f *clientFacts) { f.Issued = false }), map[string]want{
			latchkeyv1alpha1.ConditionReady:  {F, latchkeyv1alpha1.ReasonIssueFailed},
			latchkeyv1alpha1.ConditionActive: {T, latchkeyv1alpha1.ReasonActive}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkConditions(t, clientConditions(tc.facts), tc.want)
		})
	}
}

func TestGrantConditions(t *testing.T) {
	issued := grantFacts{SecretName: "s", ClientName: "c", Issued: true, ClientActive: true,
		ClientPermissions: []string{"blogs.read", "blogs.write"}, GrantPermissions: []string{"blogs.read"}}
	with := func(mod func(*grantFacts)) grantFacts { f := issued; mod(&f); return f }
	notExpired, notRevoked := want{F, latchkeyv1alpha1.ReasonNotExpired}, want{F, latchkeyv1alpha1.ReasonNotRevoked}
	for _, tc := range []struct {
		name  string
		facts grantFacts
		want  map[string]want
	}{
		{"issued", issued, map[string]want{
			latchkeyv1alpha1.ConditionReady:   {T, latchkeyv1alpha1.ReasonIssued},
			latchkeyv1alpha1.ConditionExpired: notExpired, latchkeyv1alpha1.ConditionRevoked: notRevoked}},
		{"no permissions named: all of the client's", with(func(f *grantFacts) { f.GrantPermissions = nil }), map[string]want{
			latchkeyv1alpha1.ConditionReady:   {T, latchkeyv1alpha1.ReasonIssued},
			latchkeyv1alpha1.ConditionExpired: notExpired, latchkeyv1alpha1.ConditionRevoked: notRevoked}},
		{"client missing: revoked, waits for it", with(func(f *grantFacts) {
			f.Issued, f.Revoked, f.ClientActive = false, true, false
			f.NotReadyReason, f.NotReadyMessage = latchkeyv1alpha1.ReasonClientNotFound, "create it"
		}), map[string]want{
			latchkeyv1alpha1.ConditionReady:   {F, latchkeyv1alpha1.ReasonClientNotFound},
			latchkeyv1alpha1.ConditionExpired: notExpired,
			latchkeyv1alpha1.ConditionRevoked: {T, latchkeyv1alpha1.ReasonRevoked}}},
		{"client without an id yet", with(func(f *grantFacts) {
			f.Issued, f.NotReadyReason, f.NotReadyMessage = false, latchkeyv1alpha1.ReasonClientNotReady, "wait"
		}), map[string]want{
			latchkeyv1alpha1.ConditionReady:   {F, latchkeyv1alpha1.ReasonClientNotReady},
			latchkeyv1alpha1.ConditionExpired: notExpired, latchkeyv1alpha1.ConditionRevoked: notRevoked}},
		{"foreign Secret: stalled", with(func(f *grantFacts) {
			f.NotReadyReason, f.NotReadyMessage = latchkeyv1alpha1.ReasonSecretConflict, "delete it"
		}), map[string]want{
			latchkeyv1alpha1.ConditionReady:   {F, latchkeyv1alpha1.ReasonSecretConflict},
			latchkeyv1alpha1.ConditionExpired: notExpired, latchkeyv1alpha1.ConditionRevoked: notRevoked,
			latchkeyv1alpha1.ConditionStalled: {T, latchkeyv1alpha1.ReasonSecretConflict}}},
		{"expired: revoked and stalled", with(func(f *grantFacts) {
			f.Issued, f.Expired, f.Revoked, f.ExpiresAt = false, true, true, "2030-01-01T00:00:00Z"
		}), map[string]want{
			latchkeyv1alpha1.ConditionReady:   {F, latchkeyv1alpha1.ReasonExpired},
			latchkeyv1alpha1.ConditionExpired: {T, latchkeyv1alpha1.ReasonExpired},
			latchkeyv1alpha1.ConditionRevoked: {T, latchkeyv1alpha1.ReasonRevoked},
			latchkeyv1alpha1.ConditionStalled: {T, latchkeyv1alpha1.ReasonExpired}}},
		{"expired and client gone: stalled for the expiry", with(func(f *grantFacts) {
			f.Issued, f.Expired, f.Revoked = false, true, true
			f.NotReadyReason, f.NotReadyMessage = latchkeyv1alpha1.ReasonClientNotFound, "create it"
		}), map[string]want{
			latchkeyv1alpha1.ConditionReady:   {F, latchkeyv1alpha1.ReasonClientNotFound},
			latchkeyv1alpha1.ConditionExpired: {T, latchkeyv1alpha1.ReasonExpired},
			latchkeyv1alpha1.ConditionRevoked: {T, latchkeyv1alpha1.ReasonRevoked},
			latchkeyv1alpha1.ConditionStalled: {T, latchkeyv1alpha1.ReasonExpired}}},
		{"client deactivated", with(func(f *grantFacts) { f.ClientActive = false }), map[string]want{
			latchkeyv1alpha1.ConditionReady:   {F, latchkeyv1alpha1.ReasonClientInactive},
			latchkeyv1alpha1.ConditionExpired: notExpired, latchkeyv1alpha1.ConditionRevoked: notRevoked}},
		{"permission the client does not hold", with(func(f *grantFacts) { f.GrantPermissions = []string{"blogs.read", "blogs.delete"} }), map[string]want{
			latchkeyv1alpha1.ConditionReady:   {F, latchkeyv1alpha1.ReasonPermissionNotGranted},
			latchkeyv1alpha1.ConditionExpired: notExpired, latchkeyv1alpha1.ConditionRevoked: notRevoked}},
		{"an error: retried, not stalled", with(func(f *grantFacts) {
			f.NotReadyReason, f.NotReadyMessage = latchkeyv1alpha1.ReasonIssueFailed, "boom"
		}), map[string]want{
			latchkeyv1alpha1.ConditionReady:   {F, latchkeyv1alpha1.ReasonIssueFailed},
			latchkeyv1alpha1.ConditionExpired: notExpired, latchkeyv1alpha1.ConditionRevoked: notRevoked}},
		{"nothing issued and no reason given", with(func(f *grantFacts) { f.Issued = false }), map[string]want{
			latchkeyv1alpha1.ConditionReady:   {F, latchkeyv1alpha1.ReasonIssueFailed},
			latchkeyv1alpha1.ConditionExpired: notExpired, latchkeyv1alpha1.ConditionRevoked: notRevoked}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkConditions(t, grantConditions(tc.facts), tc.want)
		})
	}
}

// checkConditions compares got with want and records the reasons seen.
func checkConditions(t *testing.T, got []metav1.Condition, want map[string]want) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("got %d conditions %v, want %d", len(got), got, len(want))
	}
	for typ, w := range want {
		c := meta.FindStatusCondition(got, typ)
		if c == nil {
			t.Errorf("no %s condition", typ)
			continue
		}
		if c.Status != w.status || c.Reason != w.reason {
			t.Errorf("%s = %s/%s, want %s/%s (%s)", typ, c.Status, c.Reason, w.status, w.reason, c.Message)
		}
		if c.Message == "" {
			t.Errorf("%s has no message", typ)
		}
	}
	for _, c := range got {
		reasonsCovered[c.Reason] = true
	}
}

// reasonsCovered collects every reason the tables above produced.
var reasonsCovered = map[string]bool{}

// TestEveryReasonCovered fails when a Reason constant of api/v1alpha1 has no
// row in the tables above that produces it: a new reason needs a row. It
// reads the constants from the source, so adding one needs no edit here.
func TestEveryReasonCovered(t *testing.T) {
	t.Run("client", TestClientConditions)
	t.Run("grant", TestGrantConditions)
	reasons := reasonConstants(t)
	if len(reasons) < 10 {
		t.Fatalf("read only %d Reason constants from conditions.go", len(reasons))
	}
	var missing []string
	for name, value := range reasons {
		if !reasonsCovered[value] {
			missing = append(missing, name+" ("+value+")")
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("no row of TestClientConditions or TestGrantConditions produces %s: add one", strings.Join(missing, ", "))
	}
}

// reasonConstants reads the Reason* constants of api/v1alpha1: name → value.
func reasonConstants(t *testing.T) map[string]string {
	t.Helper()
	path := filepath.Join("..", "..", "api", "v1alpha1", "conditions.go")
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if !strings.HasPrefix(n.Name, "Reason") || i >= len(vs.Values) {
					continue
				}
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok {
					out[n.Name], _ = strconv.Unquote(lit.Value)
				}
			}
		}
	}
	return out
}
