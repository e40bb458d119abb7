package install

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/testenv"
)

// TestKstatus: what Flux (kstatus), and the Argo CD health check in
// docs/install.md, compute for Latchkey's objects. Current only when Ready
// for the generation in spec; InProgress while not Ready (a missing client,
// a client not Ready yet) or while the operator has not seen the latest spec;
// Failed when only a person can help (Stalled=True: a foreign Secret in the
// way, an expired credential), so a Flux wait or an Argo CD sync stops
// waiting and says why.
func TestKstatus(t *testing.T) {
	ctx := context.Background()
	ns := env.Namespace(t)

	// Created and not reconciled yet (no operator runs in this namespace
	// yet): the CRD defaults status.observedGeneration to 0, so kstatus (and
	// a Flux Kustomization with wait: true) does not call it Current.
	fresh := []client.Object{
		&latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "fresh"},
			Spec: latchkeyv1alpha1.ApiClientSpec{Scopes: []string{"system"}}},
		&latchkeyv1alpha1.CredentialGrant{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "fresh-token"},
			Spec: latchkeyv1alpha1.CredentialGrantSpec{ClientName: "fresh"}},
	}
	for _, o := range fresh {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	for _, key := range []string{"ApiClient/fresh", "CredentialGrant/fresh-token"} {
		if res := compute(t, ns, key); res.Status != status.InProgressStatus {
			t.Errorf("%s before its first reconcile: kstatus %s (%s), want InProgress", key, res.Status, res.Message)
		}
	}
	for _, o := range fresh {
		if err := env.Client.Delete(ctx, o); err != nil {
			t.Fatal(err)
		}
	}

	past := metav1.NewTime(time.Now().Add(-time.Hour))
	objs := []client.Object{
		&latchkeyv1alpha1.ApiClient{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reader"},
			Spec:       latchkeyv1alpha1.ApiClientSpec{Scopes: []string{"blogs"}, Permissions: []string{"blogs.read", "blogs.write"}, Tenant: "2"},
		},
		&latchkeyv1alpha1.CredentialGrant{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reader-token"},
			Spec:       latchkeyv1alpha1.CredentialGrantSpec{ClientName: "reader"},
		},
		&latchkeyv1alpha1.CredentialGrant{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "orphan-token"},
			Spec:       latchkeyv1alpha1.CredentialGrantSpec{ClientName: "does-not-exist"},
		},
		&latchkeyv1alpha1.CredentialGrant{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "expired-token"},
			Spec:       latchkeyv1alpha1.CredentialGrantSpec{ClientName: "reader", ExpiresAt: &past},
		},
	}
	objs = append(objs, &latchkeyv1alpha1.CredentialGrant{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "conflict-token"},
		Spec:       latchkeyv1alpha1.CredentialGrantSpec{ClientName: "reader"},
	})
	// Someone else's Secret of the grant's name: Latchkey never overwrites it.
	if err := env.Client.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "conflict-token"},
		StringData: map[string]string{"token": "not Latchkey's"}}); err != nil {
		t.Fatal(err)
	}
	want := map[string]status.Status{
		"ApiClient/reader":               status.CurrentStatus,
		"CredentialGrant/reader-token":   status.CurrentStatus,
		"CredentialGrant/orphan-token":   status.InProgressStatus, // Ready=False ClientNotFound: applied before its client
		"CredentialGrant/expired-token":  status.FailedStatus,     // Stalled=True Expired
		"CredentialGrant/conflict-token": status.FailedStatus,     // Stalled=True SecretConflict
	}
	// What Failed says: what to do.
	wantMessage := map[string]string{
		"CredentialGrant/expired-token":  "set a later spec.expiresAt",
		"CredentialGrant/conflict-token": "delete it, or set spec.secretName to another name",
	}
	t.Run("reconciled", func(t *testing.T) {
		// The operator runs for this subtest only.
		env.StartManager(t, operator.Options{Namespace: "lk-kstatus", WatchNamespaces: []string{ns}})
		for _, o := range objs {
			if err := env.Client.Create(ctx, o); err != nil {
				t.Fatal(err)
			}
		}
		testenv.Eventually(t, 60*time.Second, func() error {
			for key, w := range want {
				res := compute(t, ns, key)
				if res.Status != w {
					return fmt.Errorf("%s: kstatus %s (%s), want %s", key, res.Status, res.Message, w)
				}
			}
			return nil
		})
		for key, m := range wantMessage {
			if res := compute(t, ns, key); !strings.Contains(res.Message, m) {
				t.Errorf("%s: kstatus message %q, want it to say %q", key, res.Message, m)
			}
		}
		// Not a transient state: still the same a moment later.
		time.Sleep(time.Second)
		for key, w := range want {
			if res := compute(t, ns, key); res.Status != w {
				t.Errorf("%s: kstatus %s (%s), want %s", key, res.Status, res.Message, w)
			}
		}
	})

	t.Run("spec changed, operator not running", func(t *testing.T) {
		// A GitOps sync that changes spec while the operator is down (or
		// before it has caught up) is not Current: status.observedGeneration
		// lags metadata.generation.
		var c latchkeyv1alpha1.ApiClient
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "reader"}, &c); err != nil {
			t.Fatal(err)
		}
		c.Spec.Permissions = []string{"blogs.read"}
		if err := env.Client.Update(ctx, &c); err != nil {
			t.Fatal(err)
		}
		if res := compute(t, ns, "ApiClient/reader"); res.Status != status.InProgressStatus {
			t.Fatalf("after a spec change not yet observed: kstatus %s (%s), want InProgress", res.Status, res.Message)
		}
	})
}

func compute(t *testing.T, ns, key string) *status.Result {
	t.Helper()
	kind, name, _ := strings.Cut(key, "/")
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(latchkeyv1alpha1.GroupVersion.WithKind(kind))
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, u); err != nil {
		t.Fatal(err)
	}
	res, err := status.Compute(u)
	if err != nil {
		t.Fatal(err)
	}
	return res
}
