package verifier

import (
	"sync/atomic"
	"time"
)

// freshness tracks how old the verifier's view of the cluster may be: the
// time since the last heartbeat its watch delivered (see internal/heartbeat),
// on this process's monotonic clock. A stalled watch delivers nothing, so
// the age grows; revocations made meanwhile have not reached this replica.
type freshness struct {
	max  time.Duration // 0: unbounded (no check)
	base time.Time
	last atomic.Int64 // time.Since(base) of the last heartbeat, in ns
}

func newFreshness(max time.Duration) *freshness {
	return &freshness{max: max, base: time.Now()}
}

// beat records a heartbeat (or a full, fresh sync of the caches) now.
func (f *freshness) beat() { f.last.Store(int64(time.Since(f.base))) }

// stale reports whether the view is older than max.
func (f *freshness) stale() bool {
	if f == nil || f.max <= 0 {
		return false
	}
	return time.Since(f.base)-time.Duration(f.last.Load()) > f.max
}

// age is how old the view is.
func (f *freshness) age() time.Duration {
	return time.Since(f.base) - time.Duration(f.last.Load())
}
