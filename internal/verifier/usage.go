package verifier

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/backing"
)

type usageKey struct{ kind, namespace, name string }

type usage struct {
	at   time.Time
	from string
}

// usageRecorder keeps the last use of each credential in memory; its flusher
// writes status.lastUsedAt/lastUsedFrom at most once per object per interval,
// so a busy credential costs one API write a minute, not one per request.
type usageRecorder struct {
	mu       sync.Mutex
	pending  map[usageKey]usage
	now      func() time.Time
	client   client.Client
	interval time.Duration
	log      logr.Logger
}

func (u *usageRecorder) record(k usageKey, from string) {
	if u == nil || k.name == "" {
		return
	}
	if len(from) > 64 {
		from = from[:64]
	}
	u.mu.Lock()
	u.pending[k] = usage{at: u.now(), from: from}
	u.mu.Unlock()
}

// Start flushes every interval until ctx ends. It runs on every replica (no
// leader election): each records the uses it saw.
func (u *usageRecorder) Start(ctx context.Context) error {
	t := time.NewTicker(u.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			u.flush(context.Background())
			return nil
		case <-t.C:
			u.flush(ctx)
		}
	}
}

// NeedLeaderElection: every replica flushes what it saw.
func (u *usageRecorder) NeedLeaderElection() bool { return false }

func (u *usageRecorder) flush(ctx context.Context) {
	u.mu.Lock()
	batch := u.pending
	u.pending = map[usageKey]usage{}
	u.mu.Unlock()
	for k, v := range batch {
		if err := u.write(ctx, k, v); err != nil {
			u.log.V(1).Info("Could not record usage", "kind", k.kind, "namespace", k.namespace, "name", k.name, "error", err.Error())
		}
	}
}

func (u *usageRecorder) write(ctx context.Context, k usageKey, v usage) error {
	var obj client.Object = &latchkeyv1alpha1.ApiClient{}
	if k.kind == backing.KindCredentialGrant {
		obj = &latchkeyv1alpha1.CredentialGrant{}
	}
	obj.SetNamespace(k.namespace)
	obj.SetName(k.name)
	at, _ := metav1.NewTime(v.at).MarshalJSON()
	patch := fmt.Appendf(nil, `{"status":{"lastUsedAt":%s,"lastUsedFrom":%q}}`, at, v.from)
	return client.IgnoreNotFound(u.client.Status().Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch)))
}
