package suite_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/operator"
)

// warnings collects the API server's Warning headers (admission warnings).
type warnings struct {
	mu   sync.Mutex
	text []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.text = append(w.text, text)
}

func (w *warnings) take() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := strings.Join(w.text, "\n")
	w.text = nil
	return s
}

// An ApiClient and a CredentialGrant of the same name default to the same
// Secret; whichever comes second is admitted (nothing is wrong in itself) with
// a warning that says what to do, in either order.
func TestSecretNameClashWarns(t *testing.T) {
	ctx := context.Background()
	env.StartManager(t, operator.Options{EnableWebhooks: true})
	ns := env.Namespace(t)
	w := &warnings{}
	cfg := rest.CopyConfig(env.Config)
	cfg.WarningHandler = w
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	create := func(obj client.Object) string {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			err := c.Create(ctx, obj)
			if err == nil {
				return w.take()
			}
			if time.Now().After(deadline) {
				t.Fatalf("creating %s: %v", obj.GetName(), err)
			}
			time.Sleep(100 * time.Millisecond) // the webhook may still be starting
		}
	}
	system := latchkeyv1alpha1.ApiClientSpec{Scopes: []string{"system"}}

	if got := create(&latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: "reports", Namespace: ns}, Spec: system}); got != "" {
		t.Fatalf("unexpected warning for a lone client: %s", got)
	}
	got := create(&latchkeyv1alpha1.CredentialGrant{ObjectMeta: metav1.ObjectMeta{Name: "reports", Namespace: ns},
		Spec: latchkeyv1alpha1.CredentialGrantSpec{ClientName: "reports"}})
	for _, want := range []string{`ApiClient "reports" already writes its credentials to Secret "reports"`, "SecretConflict", "set spec.secretName"} {
		if !strings.Contains(got, want) {
			t.Errorf("grant after client: warning %q does not contain %q", got, want)
		}
	}
	// A different Secret name: no warning.
	if got := create(&latchkeyv1alpha1.CredentialGrant{ObjectMeta: metav1.ObjectMeta{Name: "reports-nightly", Namespace: ns},
		Spec: latchkeyv1alpha1.CredentialGrantSpec{ClientName: "reports"}}); got != "" {
		t.Fatalf("unexpected warning: %s", got)
	}
	// The other order: a client named after an existing grant.
	got = create(&latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: "reports-nightly", Namespace: ns}, Spec: system})
	if !strings.Contains(got, `CredentialGrant "reports-nightly" already writes its credentials to Secret "reports-nightly"`) {
		t.Errorf("client after grant: warning %q", got)
	}
}
