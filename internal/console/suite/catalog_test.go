package suite

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/console"
	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/testenv"
)

// With a permission catalog, the New API client form offers its scopes and,
// for the chosen scopes only, their permissions as checkboxes; the client
// page edits permissions as checkboxes too.
func TestConsoleCatalog(t *testing.T) {
	ctx := context.Background()
	doc, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "internal", "catalog", "testdata", "catalog.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	f := newFixtureWith(t, func(f *fixture, o *operator.Options) {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: f.opNs, Name: "catalog"}, Data: map[string]string{"catalog.yaml": string(doc)}}
		if err := env.Client.Create(ctx, cm); err != nil {
			t.Fatal(err)
		}
		o.PermissionCatalogConfigMap = "catalog"
	})
	cs := startConsole(t, env.Config, f.ns, func(o *console.Options) {
		o.CatalogConfigMap = types.NamespacedName{Namespace: f.opNs, Name: "catalog"}
	})
	b := newBrowser(t, cs)

	b.open("/clients/new?namespace=" + f.ns)
	visible := func() []string {
		return eval[[]string](b, `Array.from(document.querySelectorAll("input[name=permissions]")).filter(function (e) { return e.offsetParent !== null; }).map(function (e) { return e.value; })`)
	}
	if got := visible(); len(got) != 0 {
		t.Errorf("permissions offered before a scope is chosen: %v", got)
	}
	b.do(chromedp.Click(chromedp.CSS(`input[name=scopes][value=blogs]`)))
	if got := visible(); !slices.Equal(got, []string{"blogs.read", "blogs.write", "blogs.comments.moderate"}) {
		t.Errorf("permissions offered for scope blogs: %v", got)
	}
	b.do(chromedp.Click(chromedp.CSS(`input[name=permissions][value="blogs.read"]`)),
		chromedp.SendKeys(chromedp.CSS("#tenant"), "2"))
	b.check("new-client-catalog")
	b.submit("#create")
	b.waitFor(`document.querySelector("#client-id").textContent.startsWith("id_")`)
	list := &latchkeyv1alpha1.ApiClientList{}
	if err := env.Client.List(ctx, list, client.InNamespace(f.ns)); err != nil || len(list.Items) != 1 {
		t.Fatalf("clients: %v %v", list.Items, err)
	}
	c := list.Items[0]
	if !slices.Equal(c.Spec.Scopes, []string{"blogs"}) || !slices.Equal(c.Spec.Permissions, []string{"blogs.read"}) {
		t.Fatalf("created scopes %v permissions %v", c.Spec.Scopes, c.Spec.Permissions)
	}

	// The client page: the scope's permissions as checkboxes.
	b.do(chromedp.Click(chromedp.CSS(`#permission-choices input[value="blogs.write"]`)))
	b.submit("#save-permissions")
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(&c), &c); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Spec.Permissions, []string{"blogs.read", "blogs.write"}) {
		t.Errorf("permissions after checking blogs.write: %v", c.Spec.Permissions)
	}
	if got := b.text("#permission-choices"); !strings.Contains(got, "blogs.comments.moderate") {
		t.Errorf("client page choices: %q", got)
	}
	b.check("client-catalog")
}
