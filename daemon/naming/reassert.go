package naming

import "time"

// Re-assertion undoes a remote heartbeat expiry of instances that this node
// still hears beating: the expiring node could not see the beats (a
// partition, or a stale owner), so its tombstone is evidence of nothing. The
// instance is written again with a newer version, which wins everywhere.
// Deregistrations are never undone, and nothing is re-asserted while the node
// is stalled (a write on a stale view; a live client's next beat registers
// it again over the expiry).
//
// The expiry arrives in distro's Store.Apply callback, which must not write
// (a write tells distro, from inside distro's call). Apply only picks the
// instances (reassertBeating) and adds them to a coalescing set; the
// registry's reassert loop, started in Start and waited for in Shutdown,
// takes the set and writes (reassertOnce).

// reassertBeating queues the instances that after, the state a peer's datum
// made of key, expired while before had them live and this node heard them
// beat recently. It never blocks on more than beatMu and reassertMu.
func (r *Registry) reassertBeating(key string, before, after *Service) {
	now := r.now()
	if r.stalled(now) {
		return
	}
	var revive []*Instance
	r.beatMu.Lock()
	for ik, in := range after.Instances {
		prev := before.live(ik)
		if !in.Deleted || !in.Expired || prev == nil {
			continue
		}
		// Only a beat heard here counts: a grace (ownership gained, a stall)
		// is no evidence that the client lives.
		rec, ok := r.lastBeat[key][ik]
		if _, unhealthy, _ := r.timeouts(prev); ok && rec.heard != noBeat && time.Duration(r.beatClock(now)-rec.heard) <= unhealthy {
			revive = append(revive, prev)
		}
	}
	r.beatMu.Unlock()
	if len(revive) == 0 {
		return
	}
	r.reassertMu.Lock()
	if r.reassertPending == nil {
		r.reassertPending = map[string]map[string]*Instance{}
	}
	m := r.reassertPending[key]
	if m == nil {
		m = make(map[string]*Instance, len(revive))
		r.reassertPending[key] = m
	}
	for _, prev := range revive {
		if q := m[prev.Key()]; q == nil || q.Version < prev.Version {
			m[prev.Key()] = prev // coalesced: the latest incarnation seen live here
		}
	}
	r.reassertMu.Unlock()
	select {
	case r.reassertSignal <- struct{}{}:
	default: // the loop is signalled already and takes the whole set
	}
}

// reassertQueued reports how many instances wait to be re-asserted.
func (r *Registry) reassertQueued() int {
	r.reassertMu.Lock()
	defer r.reassertMu.Unlock()
	n := 0
	for _, m := range r.reassertPending {
		n += len(m)
	}
	return n
}

// reassertLoop re-asserts what Apply queued until Shutdown. The caller has
// counted it in r.wg.
func (r *Registry) reassertLoop() {
	defer r.wg.Done()
	for {
		select {
		case <-r.stop:
			return
		case <-r.reassertSignal:
			r.reassertOnce()
		}
	}
}

// reassertOnce takes the queued set, resetting it, and writes each service's
// instances again. Stopped by Shutdown between services.
func (r *Registry) reassertOnce() {
	r.reassertMu.Lock()
	pending := r.reassertPending
	r.reassertPending = nil
	r.reassertMu.Unlock()
	for key, revive := range pending {
		select {
		case <-r.stop:
			return
		default:
		}
		r.reassert(key, revive)
	}
}

// reassert writes the instances of revive (instance key → the instance as it
// lived here) again at a new version, each only while its current state is
// still an expiry tombstone. Nothing is written while the node is stalled.
func (r *Registry) reassert(key string, revive map[string]*Instance) {
	if r.stalled(r.now()) {
		r.log.Debug("re-assertion dropped: the node is stalled", "service", key, "count", len(revive))
		return
	}
	n := 0
	err := r.write(key, func(cur *Service, v uint64) (*Service, error) {
		if cur == nil {
			return nil, nil // the service is gone from the store (swept meanwhile): nothing to undo
		}
		delta := &Service{Instances: map[string]*Instance{}}
		for ik, prev := range revive {
			if in := cur.Instances[ik]; in == nil || !in.Deleted || !in.Expired {
				continue // written again meanwhile
			}
			c := *prev
			c.Healthy, c.Version, c.Registered = true, v, v // a new incarnation: it outranks the expiry
			delta.Instances[ik] = &c
		}
		if n = len(delta.Instances); n == 0 {
			return nil, nil
		}
		return delta, nil
	})
	if err != nil {
		r.log.Warn("re-assert beating instances", "service", key, "err", err)
		return
	}
	if n > 0 {
		r.log.Info("re-asserted instances a peer expired while they beat here", "service", key, "count", n)
	}
}
