package v1alpha1

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
)

// A user-chosen client secret shorter than MinChosenSecretLength is refused
// at admission when the webhook can read it, with a message that says how
// to make one, and never with the secret (nor its length) in it.
func TestAbuseShortChosenSecretRefused(t *testing.T) {
	const short = "s3cret-pass" // 11 characters
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := latchkeyv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	secret := func(name, key, value string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: name}, Data: map[string][]byte{key: []byte(value)}}
	}
	reader := fake.NewClientBuilder().WithScheme(scheme).WithObjects(
		secret("short", "client_secret", short),
		secret("short-other-key", "password", short),
		secret("sixteen", "client_secret", "exactly-16-chars"),
		secret("runes", "client_secret", "ééééééééééééééé"), // 15 characters, 30 bytes
		secret("long", "client_secret", "a-long-user-chosen-secret-0123456789"),
	).Build()
	v := &ApiClientValidator{Client: reader, APIReader: reader}
	ref := func(name, key string) func(*latchkeyv1alpha1.ApiClient) {
		return func(c *latchkeyv1alpha1.ApiClient) {
			c.Spec.ClientSecretRef = &latchkeyv1alpha1.SecretKeyReference{Name: name, Key: key}
		}
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		old, new *latchkeyv1alpha1.ApiClient
		refused  bool
	}{
		{name: "short secret on create", new: apiClient(ref("short", "")), refused: true},
		{name: "short secret under another key", new: apiClient(ref("short-other-key", "password")), refused: true},
		{name: "15 characters of 2 bytes each", new: apiClient(ref("runes", "client_secret")), refused: true},
		{name: "exactly the minimum", new: apiClient(ref("sixteen", ""))},
		{name: "long secret", new: apiClient(ref("long", "client_secret"))},
		{name: "Secret not there yet: the controller checks", new: apiClient(ref("not-there-yet", ""))},
		{name: "key not there yet: the controller checks", new: apiClient(ref("long", "other"))},
		{name: "no clientSecretRef", new: apiClient()},
		{name: "update pointing at a short secret", old: apiClient(ref("long", "")), new: apiClient(ref("short", "")), refused: true},
		{name: "unrelated update of a client whose secret is short", old: apiClient(ref("short", "")),
			new: apiClient(ref("short", ""), func(c *latchkeyv1alpha1.ApiClient) { c.Spec.Permissions = []string{"blogs.read"} })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.old == nil {
				_, err = v.ValidateCreate(ctx, tc.new)
			} else {
				_, err = v.ValidateUpdate(ctx, tc.old, tc.new)
			}
			if !tc.refused {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("admitted")
			}
			msg := err.Error()
			for _, want := range []string{"spec.clientSecretRef", "fewer than 16 characters", "openssl rand -base64 32", "leave out spec.clientSecretRef"} {
				if !strings.Contains(msg, want) {
					t.Errorf("message lacks %q: %s", want, msg)
				}
			}
			if strings.Contains(msg, short) || strings.Contains(msg, "éé") || strings.Contains(msg, " 11 ") || strings.Contains(msg, " 15 ") {
				t.Errorf("message tells the secret or its length: %s", msg)
			}
		})
	}
}
