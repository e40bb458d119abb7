package controller

import (
	"strconv"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// expectTimeout bounds how long a reconcile waits for the cache to show a
// secret this process issued before it confirms with the API server instead
// (a watch that lost an event, a Secret deleted before the cache saw it).
const expectTimeout = 30 * time.Second

// expectations remember, per owner, the secret this process issued last
// until the cache shows it (the kube-controller-manager's pattern). Without
// them a reconcile triggered by the first of its own writes would see the
// backing token but not yet the consumer Secret, and would have to ask the
// API server (a GET and a LIST per object) to learn that nothing is to be
// done. They are in memory: after a restart the caches start from a list
// that holds every earlier write.
type expectations struct {
	mu      sync.Mutex
	pending map[types.UID]expected
	// confirm: owners whose next decision must be confirmed with the API
	// server (a create found a Secret the cache did not show).
	confirm map[types.UID]bool
	// written: the last status this process wrote for each owner, and the
	// resourceVersion the write produced.
	written map[types.UID]writtenStatus
}

type writtenStatus struct {
	resourceVersion uint64
	// status is the status as applied (the controller's fields), whole the
	// typed status it came from.
	status, whole any
}

type expected struct {
	tokenID string
	since   time.Time
}

func newExpectations() *expectations {
	return &expectations{pending: map[types.UID]expected{}, confirm: map[types.UID]bool{}, written: map[types.UID]writtenStatus{}}
}

func (e *expectations) expect(owner types.UID, tokenID string, now time.Time) {
	if e == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.pending[owner] = expected{tokenID: tokenID, since: now}
}

// seen reports whether o (from the cache) shows what this process issued
// last for owner, or nothing is pending, or the wait timed out.
func (e *expectations) seen(owner types.UID, o observed, now time.Time) bool {
	if e == nil {
		return true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	x, ok := e.pending[owner]
	if !ok {
		return true
	}
	if o.SecretExists && o.SecretTokenID == x.tokenID && hasToken(o, x.tokenID) || now.Sub(x.since) > expectTimeout {
		delete(e.pending, owner)
		return true
	}
	return false
}

func hasToken(o observed, id string) bool {
	for _, t := range o.Tokens {
		if t.ID == id {
			return true
		}
	}
	return false
}

func (e *expectations) confirmNext(owner types.UID) {
	if e == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.confirm[owner] = true
}

// takeConfirm reports (once) whether the owner's next decision must be
// confirmed with the API server.
func (e *expectations) takeConfirm(owner types.UID) bool {
	if e == nil {
		return false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.confirm[owner]
	delete(e.confirm, owner)
	return c
}

// forget drops what is remembered of a deleted owner.
func (e *expectations) forget(owner types.UID) {
	if e == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.pending, owner)
	delete(e.confirm, owner)
	delete(e.written, owner)
}

// statusWritten records the status this process applied for owner (as
// applied, and whole) and the resourceVersion the write produced.
func (e *expectations) statusWritten(owner types.UID, resourceVersion string, applied, whole any) {
	rv, err := strconv.ParseUint(resourceVersion, 10, 64)
	if e == nil || err != nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.written[owner] = writtenStatus{resourceVersion: rv, status: applied, whole: whole}
}

// behind returns what this process last wrote as obj's status when obj (from
// the cache) predates that write. Resource versions are compared as numbers
// (etcd revisions); one that is not a number is never behind.
func (e *expectations) behind(obj client.Object) (writtenStatus, bool) {
	rv, err := strconv.ParseUint(obj.GetResourceVersion(), 10, 64)
	if e == nil || err != nil {
		return writtenStatus{}, false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	w, ok := e.written[obj.GetUID()]
	return w, ok && rv < w.resourceVersion
}

// wroteStatus reports whether this process applied status as obj's status
// after the version obj (from the cache) is: applying it again would change
// nothing.
func (e *expectations) wroteStatus(obj client.Object, applied any) bool {
	w, ok := e.behind(obj)
	return ok && equality.Semantic.DeepEqual(w.status, applied)
}

// overlayStatus replaces a cached object's status by the one this process
// applied after it, so that a reconcile the cache has not caught up with
// decides from what this process knows it wrote (keeping each condition's
// transition time) instead of writing a stale status again.
func overlayStatus[S any, P interface {
	*S
	DeepCopy() *S
}](e *expectations, obj client.Object, cur P) {
	w, ok := e.behind(obj)
	if !ok {
		return
	}
	if whole, ok := w.whole.(S); ok {
		*cur = *P(&whole).DeepCopy()
	}
}
