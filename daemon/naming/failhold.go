package naming

import "time"

// HoldRemovals stops heartbeat expiry from removing instances for
// Config.FailureHold; it only marks them unhealthy meanwhile. The daemon calls
// it when a member fails (dead, not left): from one side of a network
// partition the other side looks crashed, and the clients whose beats went
// there keep beating there, so a missing beat here is not evidence of death —
// neither for the partitions gained from the failed member nor for those this
// node owned all along, whose clients may sit behind the partition. A client
// that really died is removed FailureHold later rather than never (Eureka's
// self-preservation, bounded in time). Deregistrations are not affected.
func (r *Registry) HoldRemovals() {
	if r.cfg.FailureHold == 0 {
		return
	}
	until := r.now().Add(r.cfg.FailureHold)
	r.holdMu.Lock()
	if until.After(r.holdUntil) {
		r.holdUntil = until
	}
	r.holdMu.Unlock()
}

// removalsHeld reports whether a failure hold is in force at now.
func (r *Registry) removalsHeld(now time.Time) bool {
	r.holdMu.Lock()
	defer r.holdMu.Unlock()
	return now.Before(r.holdUntil)
}
