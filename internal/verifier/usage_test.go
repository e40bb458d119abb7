package verifier

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/backing"
)

// A use replaces the recorded one only if it falls in a later second:
// lastUsedAt never goes backwards, and a use within the recorded second
// (which the one-second status format cannot tell apart) writes nothing.
func TestUsageNewer(t *testing.T) {
	rec := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name     string
		recorded *metav1.Time
		at       time.Time
		want     bool
	}{
		{"nothing recorded", nil, rec, true},
		{"a minute later", &metav1.Time{Time: rec}, rec.Add(time.Minute), true},
		{"the next second", &metav1.Time{Time: rec}, rec.Add(time.Second), true},
		{"the same instant", &metav1.Time{Time: rec}, rec, false},
		{"later within the same second", &metav1.Time{Time: rec}, rec.Add(999 * time.Millisecond), false},
		{"a second earlier", &metav1.Time{Time: rec}, rec.Add(-time.Second), false},
		{"an hour earlier", &metav1.Time{Time: rec}, rec.Add(-time.Hour), false},
		{"another zone, later", &metav1.Time{Time: rec}, rec.Add(2 * time.Second).In(time.FixedZone("x", 3600)), true},
	} {
		if got := usageNewer(tc.recorded, tc.at); got != tc.want {
			t.Errorf("%s: usageNewer = %v, want %v", tc.name, got, tc.want)
		}
	}
}

type patchSeen struct {
	ResourceVersion string
	LastUsedAt      time.Time
}

// usageClient is a fake client whose cache shows the grant with lastUsedAt at
// cached; the API server (SubResourceGet) has it at fresh; the first
// conflicts status patches fail with a conflict.
func usageClient(t *testing.T, cached, fresh time.Time, conflicts int, seen *[]patchSeen) client.Client {
	t.Helper()
	s := runtime.NewScheme()
	if err := latchkeyv1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	g := &latchkeyv1alpha1.CredentialGrant{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "g", ResourceVersion: "10"}}
	g.Status.LastUsedAt = &metav1.Time{Time: cached}
	return fake.NewClientBuilder().WithScheme(s).WithObjects(g).WithStatusSubresource(g).WithInterceptorFuncs(interceptor.Funcs{
		SubResourceApply: func(_ context.Context, _ client.Client, sub string, ac runtime.ApplyConfiguration, opts ...client.SubResourceApplyOption) error {
			data, err := json.Marshal(ac)
			if err != nil {
				return err
			}
			o := &client.SubResourceApplyOptions{}
			o.ApplyOpts(opts)
			if sub != "status" || o.FieldManager != "latchkey-usage" {
				t.Fatalf("applied %s as %q, want status as latchkey-usage", sub, o.FieldManager)
			}
			var body struct {
				Metadata struct {
					ResourceVersion string `json:"resourceVersion"`
				} `json:"metadata"`
				Status struct {
					LastUsedAt time.Time `json:"lastUsedAt"`
				} `json:"status"`
			}
			if err := json.Unmarshal(data, &body); err != nil {
				t.Fatalf("patch %s: %v", data, err)
			}
			*seen = append(*seen, patchSeen{body.Metadata.ResourceVersion, body.Status.LastUsedAt})
			if len(*seen) <= conflicts {
				return apierrors.NewConflict(schema.GroupResource{Resource: "credentialgrants"}, "g", nil)
			}
			return nil
		},
		SubResourceGet: func(_ context.Context, _ client.Client, sub string, _ client.Object, out client.Object, _ ...client.SubResourceGetOption) error {
			if sub != "status" {
				t.Fatalf("read subresource %q", sub)
			}
			o := out.(*latchkeyv1alpha1.CredentialGrant)
			o.Namespace, o.Name, o.ResourceVersion = "ns", "g", "11"
			o.Status.LastUsedAt = &metav1.Time{Time: fresh}
			return nil
		},
	}).Build()
}

// The flusher's write: skipped when the object already shows a use at that
// second or later; otherwise an optimistic-lock patch, re-read and retried
// once on conflict only if still newer. Written with server-side apply
// as its own field manager.
func TestUsageWrite(t *testing.T) {
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name          string
		cached, fresh time.Time
		conflicts     int
		at            time.Time
		wantRVs       []string
	}{
		{"older than the cache: nothing written", t0, t0, 0, t0.Add(-time.Minute), nil},
		{"same second: nothing written", t0, t0, 0, t0.Add(500 * time.Millisecond), nil},
		{"newer: one patch on the cached version", t0, t0, 0, t0.Add(time.Minute), []string{"10"}},
		{"conflict, the winner is newer: no retry", t0, t0.Add(2 * time.Minute), 1, t0.Add(time.Minute), []string{"10"}},
		{"conflict, the winner is older: one retry on the fresh version", t0, t0.Add(30 * time.Second), 1, t0.Add(time.Minute), []string{"10", "11"}},
		{"conflict twice: give up after one retry", t0, t0.Add(30 * time.Second), 5, t0.Add(time.Minute), []string{"10", "11"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var seen []patchSeen
			u := &usageRecorder{client: usageClient(t, tc.cached, tc.fresh, tc.conflicts, &seen), log: logr.Discard()}
			err := u.write(context.Background(), usageKey{kind: backing.KindCredentialGrant, namespace: "ns", name: "g"}, usage{at: tc.at, from: "10.0.0.1"})
			if tc.conflicts > 1 {
				if !apierrors.IsConflict(err) {
					t.Errorf("write = %v, want the second conflict", err)
				}
			} else if err != nil {
				t.Errorf("write = %v", err)
			}
			if len(seen) != len(tc.wantRVs) {
				t.Fatalf("patches = %+v, want resourceVersions %v", seen, tc.wantRVs)
			}
			for i, p := range seen {
				if p.ResourceVersion != tc.wantRVs[i] || !p.LastUsedAt.Equal(tc.at.Truncate(time.Second)) {
					t.Errorf("patch %d = %+v, want resourceVersion %s and lastUsedAt %v", i, p, tc.wantRVs[i], tc.at)
				}
			}
		})
	}
}

// A credential deleted meanwhile is not an error.
func TestUsageWriteGone(t *testing.T) {
	var seen []patchSeen
	u := &usageRecorder{client: usageClient(t, time.Now(), time.Now(), 0, &seen), log: logr.Discard()}
	if err := u.write(context.Background(), usageKey{kind: backing.KindApiClient, namespace: "ns", name: "gone"}, usage{at: time.Now()}); err != nil || len(seen) != 0 {
		t.Fatalf("write = %v, %d patches", err, len(seen))
	}
}
