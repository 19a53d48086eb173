package naming

import "time"

// removalHold remembers, per partition, until when expiry must not remove
// instances: the partition was gained because its owner failed. From one side
// of a network partition the other side looks crashed; its clients keep
// beating over there, so a missing beat here is not evidence of death.
// Instances still turn unhealthy (reversible, and hidden by healthyOnly); they
// are removed once the hold ends, so a client that really died with its node
// goes FailureHold + DeleteTimeout later rather than never (Eureka's
// self-preservation, scoped to the partitions a failure moved).
type removalHold struct {
	partitionOf func(key string) int
	until       map[int]time.Time
}

// HoldRemovals holds removals in the given partitions for Config.FailureHold;
// the daemon calls it for partitions it gained from a member that failed.
func (r *Registry) HoldRemovals(partitionOf func(key string) int, partitions []int) {
	if len(partitions) == 0 || r.cfg.FailureHold == 0 {
		return
	}
	until := r.now().Add(r.cfg.FailureHold)
	r.holdMu.Lock()
	defer r.holdMu.Unlock()
	if r.hold.until == nil {
		r.hold.until = make(map[int]time.Time)
	}
	r.hold.partitionOf = partitionOf
	for _, p := range partitions {
		r.hold.until[p] = until
	}
}

// removalHeld reports whether expiry must not remove instances of key now;
// holds that ended are forgotten.
func (r *Registry) removalHeld(key string, now time.Time) bool {
	r.holdMu.Lock()
	defer r.holdMu.Unlock()
	if len(r.hold.until) == 0 {
		return false
	}
	p := r.hold.partitionOf(key)
	until, ok := r.hold.until[p]
	if ok && !now.Before(until) {
		delete(r.hold.until, p)
		return false
	}
	return ok
}
