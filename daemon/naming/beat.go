package naming

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/distrod/distrod/daemon/httpx"
)

// Nacos beat response codes.
const (
	codeOK       = 10200
	codeNotFound = 20404
)

// Preserved metadata keys (Nacos PreservedMetadataKeys) that tune one instance's timings, in ms.
const (
	metaBeatInterval  = "preserved.heart.beat.interval"
	metaBeatTimeout   = "preserved.heart.beat.timeout"
	metaDeleteTimeout = "preserved.ip.delete.timeout"
)

// maxMetaMillis is the longest timing in ms that a time.Duration holds.
const maxMetaMillis = math.MaxInt64 / int64(time.Millisecond)

// timeouts returns an instance's beat interval, unhealthy and delete timeouts.
// A timing longer than a time.Duration holds (~292 years) means "never", as
// it does in Nacos; it must not wrap around to a negative duration.
func (r *Registry) timeouts(in *Instance) (interval, unhealthy, remove time.Duration) {
	ms := func(k string, def time.Duration) time.Duration {
		if v, ok := in.Metadata[k]; ok {
			if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil && n > 0 {
				return time.Duration(min(n, maxMetaMillis)) * time.Millisecond
			}
		}
		return def
	}
	return ms(metaBeatInterval, r.cfg.BeatInterval), ms(metaBeatTimeout, r.cfg.BeatTimeout), ms(metaDeleteTimeout, r.cfg.DeleteTimeout)
}

// rsInfo is the beat JSON a client sends (Nacos RsInfo / nacos-sdk-go BeatInfo).
type rsInfo struct {
	IP          string         `json:"ip"`
	Port        json.Number    `json:"port"`
	Weight      *float64       `json:"weight"`
	ServiceName string         `json:"serviceName"`
	Cluster     string         `json:"cluster"`
	Metadata    map[string]any `json:"metadata"`
	Ephemeral   *bool          `json:"ephemeral"`
}

type beatResponse struct {
	ClientBeatInterval int64 `json:"clientBeatInterval"`
	Code               int   `json:"code"`
	LightBeatEnabled   *bool `json:"lightBeatEnabled,omitempty"`
}

// beat is PUT /instance/beat. A known instance gets a fresh beat (and is made
// healthy again, a write, if it was not); an unknown one is registered from
// the beat info, or answered 20404 when there is none (light beat), which
// makes the client register again.
//
// An instance whose current state is a deregistration tombstone is not
// registered from beat info: it is answered 20404 like a light beat. Nacos
// re-registers there too, but a client that deregistered stops beating, so
// such a beat is a stale one (queued in a stopped node's socket, or retried
// across the deregistration) and must not bring the instance back (invariant
// 3). A client that is really alive loses nothing: on 20404 nacos-sdk-go and
// the Java client register again with POST /instance, which always works. An
// instance removed by expiry (an expiry tombstone) or never seen is
// registered from beat info as before.
func (r *Registry) beat(ctx *fasthttp.RequestCtx, p *params) (any, error) {
	ns, err := p.namespace()
	if err != nil {
		return nil, err
	}
	var info *rsInfo
	if raw := p.str("beat"); raw != "" {
		info = &rsInfo{}
		dec := json.NewDecoder(strings.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(info); err != nil {
			return nil, httpx.BadRequest("Param 'beat' is illegal, it should be a JSON object: %v", err)
		}
	}
	rawName := p.str("serviceName")
	if rawName == "" && info != nil {
		rawName = strings.TrimSpace(info.ServiceName)
	}
	if rawName == "" {
		return nil, httpx.BadRequest("Param 'serviceName' is required.")
	}
	ref, err := parseServiceName(ns, rawName, p.str("groupName"))
	if err != nil {
		return nil, err
	}
	in, err := beatInstance(p, info, r.cfg.MaxMetadataBytes)
	if err != nil {
		return nil, err
	}
	if res, err := r.route(ctx, ref.key()); res != nil || err != nil {
		return res, err
	}

	r.stats.beats.Inc()
	key, ik := ref.key(), in.Key()
	interval := r.cfg.BeatInterval
	notFound := beatResponse{ClientBeatInterval: interval.Milliseconds(), Code: codeNotFound}
	cur := r.liveInstance(key, ik)
	if cur == nil {
		if info == nil {
			return notFound, nil
		}
		err := r.upsert(key, in, func(cur *Service) error { return refuseDeregistered(cur, ik) })
		if errors.Is(err, errDeregistered) {
			r.log.Info("beat from a deregistered instance, not registering it", "service", key, "instance", ik)
			return notFound, nil
		}
		if err != nil {
			return nil, err
		}
		r.log.Info("beat from unknown instance, registered it", "service", key, "instance", ik)
		cur = in
	} else {
		r.recordBeat(key, ik)
		if !cur.Healthy {
			if err := r.setHealth(key, ik, true); err != nil {
				return nil, err
			}
		}
	}
	interval, _, _ = r.timeouts(cur)
	light := true
	return beatResponse{ClientBeatInterval: interval.Milliseconds(), Code: codeOK, LightBeatEnabled: &light}, nil
}

// beatInstance reads the instance a beat is about, from the beat JSON or
// from ip/port/clusterName parameters.
func beatInstance(p *params, info *rsInfo, maxMeta int) (*Instance, error) {
	in := &Instance{Weight: 1, Healthy: true, Enabled: true, Ephemeral: true}
	cluster, err := p.cluster()
	if err != nil {
		return nil, err
	}
	in.Cluster = cluster
	ip, port := p.str("ip"), p.str("port")
	if info != nil {
		ip, port = strings.TrimSpace(info.IP), info.Port.String()
		if c := strings.TrimSpace(info.Cluster); c != "" {
			if err := checkCluster(c); err != nil {
				return nil, err
			}
			in.Cluster = c
		}
		if info.Weight != nil {
			if err := checkWeight(*info.Weight); err != nil {
				return nil, err
			}
			in.Weight = *info.Weight + 0
		}
		if info.Ephemeral != nil {
			in.Ephemeral = *info.Ephemeral
		}
		if len(info.Metadata) > 0 {
			in.Metadata = make(map[string]string, len(info.Metadata))
			for k, v := range info.Metadata {
				s, ok := v.(string)
				if !ok || k == "" {
					return nil, httpx.BadRequest("Param 'beat' is illegal: metadata values must be strings")
				}
				in.Metadata[k] = s
			}
			if err := checkMetadataSize(in.Metadata, maxMeta); err != nil {
				return nil, err
			}
		}
	}
	if ip == "" {
		return nil, httpx.BadRequest("Param 'ip' is required.")
	}
	if err := checkIP(ip); err != nil {
		return nil, err
	}
	n, err := parsePort(port)
	if err != nil {
		return nil, err
	}
	in.IP, in.Port = ip, n
	return in, nil
}

// setHealth writes an instance's health if it is live and differs.
func (r *Registry) setHealth(key, ik string, healthy bool) error {
	return r.write(key, func(cur *Service, v uint64) (*Service, error) {
		in := cur.live(ik)
		if in == nil || in.Healthy == healthy {
			return nil, nil
		}
		n := *in
		n.Healthy, n.Version = healthy, v
		return &Service{Instances: map[string]*Instance{ik: &n}}, nil
	})
}

// errDeregistered refuses to register an instance from a beat over its
// deregistration tombstone.
var errDeregistered = errors.New("instance was deregistered")

// refuseDeregistered is the upsert check of a registration from a beat.
func refuseDeregistered(cur *Service, ik string) error {
	if cur == nil {
		return nil
	}
	if t := cur.Instances[ik]; t != nil && t.Deleted && !t.Expired {
		return errDeregistered
	}
	return nil
}

// beatRecord is what this node knows of an instance's beats. Only the
// responsible node's records drive expiry. Times are beatClock readings
// (nanoseconds, monotonic), kept inline in the service's beat map: a record
// costs 16 bytes, not a pointer to two time.Time.
type beatRecord struct {
	// last is the expiry clock: the last beat heard, or a later grace (an
	// ownership change, a stall) that restarts the clock without a beat. It
	// may lie in the future (a grace that starts when a stall's hold ends).
	last int64
	// heard is the last beat a client actually sent here (noBeat: none). Only
	// heard beats are evidence that the client is alive (reassertBeating).
	heard int64
}

// noBeat is a beatRecord time before every other.
const noBeat = math.MinInt64

// beatClock reads t as a beatRecord time: nanoseconds since the registry's
// epoch, measured on the monotonic clock when t carries it (time.Now does),
// so a step of the wall clock does not age every record at once.
func (r *Registry) beatClock(t time.Time) int64 { return int64(t.Sub(r.epoch)) }

// recordBeat records a beat heard now.
func (r *Registry) recordBeat(key, ik string) {
	now := r.beatClock(r.now())
	r.beatMu.Lock()
	m := r.beatsLocked(key)
	rec, ok := m[ik]
	if !ok {
		rec.last = noBeat
	}
	rec.heard = now
	rec.last = max(rec.last, now)
	m[ik] = rec
	r.beatMu.Unlock()
}

// graceLocked restarts ik's expiry clock at t (a beatClock reading) unless it
// already runs from later; it is not a heard beat. The caller holds r.beatMu.
func (r *Registry) graceLocked(key, ik string, t int64) {
	m := r.beatsLocked(key)
	rec, ok := m[ik]
	if !ok {
		rec = beatRecord{last: t, heard: noBeat}
	}
	rec.last = max(rec.last, t)
	m[ik] = rec
}

// graceLive gives every live instance of es a grace at t (graceLocked) and
// reports how many it touched.
func (r *Registry) graceLive(es []keyedEntry, t time.Time) int {
	n := 0
	bt := r.beatClock(t)
	for _, o := range es {
		svc := o.e.service() // decoded outside beatMu: beats are not held up by a large grace
		r.beatMu.Lock()
		for ik, in := range svc.Instances {
			if !in.Deleted {
				r.graceLocked(o.key, ik, bt)
				n++
			}
		}
		r.beatMu.Unlock()
	}
	return n
}

// beatsLocked returns key's beat map, creating it. The caller holds r.beatMu.
func (r *Registry) beatsLocked(key string) map[string]beatRecord {
	m := r.lastBeat[key]
	if m == nil {
		m = map[string]beatRecord{}
		r.lastBeat[key] = m
	}
	return m
}

func (r *Registry) forgetBeat(key, ik string) {
	r.beatMu.Lock()
	if m := r.lastBeat[key]; m != nil {
		delete(m, ik)
		if len(m) == 0 {
			delete(r.lastBeat, key)
		}
	}
	r.beatMu.Unlock()
}

// expireOnce checks the beats of the ephemeral instances of every service this
// node owns: no beat for the unhealthy timeout marks an instance unhealthy, no
// beat for the delete timeout removes it. An instance without a local beat
// record (it arrived by replication) is treated as beaten now, so a node
// never deletes what it has no history of. Beat records of instances that are
// gone are dropped.
//
// Three holds keep a stale view from deleting live instances:
//   - while the node is stalled or in the hold after a stall (stall.go) the
//     round is skipped: the missing beats are the node's own absence;
//   - for FailureHold after a member failed (failhold.go): the failure may
//     be a network partition with beating clients on the other side;
//   - until the ring views have agreed for SettleHold (Cluster.ViewsSettledSince),
//     an overdue instance is only marked unhealthy, not removed. While views
//     differ, the node that believes it owns a service may not be the one the
//     clients' beats are forwarded to, so its beat records are not evidence of
//     death; once views agree, every beat reaches the agreed owner within one
//     beat interval. DeleteTimeout/2 (three beat intervals by default) leaves
//     room for that and for a verify interval in which a peer's differing
//     ring is noticed. Marking unhealthy is reversible by the next beat and
//     loses nothing; a removal, once pushed, flickers the instance away on
//     every node even when the beating side re-asserts it.
//
// No hold keeps a dead client's instance forever: each ends, and a grace
// restarts the clock only once, so the instance is removed DeleteTimeout
// after the grace.
func (r *Registry) expireOnce(now time.Time) {
	if r.stalled(now) {
		r.log.Debug("expiry skipped: the node was stalled")
		return
	}
	mayRemove := r.viewsSettled(now) && !r.removalsHeld(now)
	keys := r.entriesWhere(func(_ string, e *entry) bool {
		due := e.expiryDue.Load()
		return due == 0 || now.UnixNano() > due // else checked in this state, nothing due yet
	})

	held := 0
	nowBeat := r.beatClock(now)
	for _, o := range keys {
		var svc *Service // decoded only when there are beats to check or the service is owned
		r.beatMu.Lock()
		beats := r.lastBeat[o.key]
		if len(beats) > 0 {
			svc = o.e.service()
			for ik := range beats {
				if svc.live(ik) == nil {
					delete(beats, ik)
				}
			}
		}
		if beats != nil && len(beats) == 0 {
			delete(r.lastBeat, o.key)
		}
		r.beatMu.Unlock()

		if !o.e.exists {
			continue
		}
		if own, ok := r.cluster.OwnerOf(o.key); !ok || !own.Self {
			continue
		}
		if svc == nil {
			svc = o.e.service()
		}
		var sick, dead []string
		due := int64(math.MaxInt64) // the earliest deadline of an instance not acted on now
		r.beatMu.Lock()
		for ik, in := range svc.Instances {
			if in.Deleted || !in.Ephemeral {
				continue
			}
			_, unhealthyAfter, deleteAfter := r.timeouts(in)
			rec, ok := r.lastBeat[o.key][ik]
			if !ok {
				r.graceLocked(o.key, ik, nowBeat)
				due = min(due, now.Add(unhealthyAfter).UnixNano())
				continue
			}
			idle := time.Duration(nowBeat - rec.last)
			if in.Healthy {
				due = min(due, now.Add(unhealthyAfter-idle).UnixNano())
			} else {
				due = min(due, now.Add(deleteAfter-idle).UnixNano())
			}
			switch {
			case idle > deleteAfter && mayRemove:
				dead = append(dead, ik)
			case idle > deleteAfter:
				held++
				fallthrough
			case idle > unhealthyAfter:
				if in.Healthy {
					sick = append(sick, ik)
				}
			}
		}
		r.beatMu.Unlock()
		if len(sick) == 0 && len(dead) == 0 {
			// Nothing to do before due: skip this state until then. Held
			// removals and any write make a due in the past or a new entry.
			o.e.expiryDue.Store(due)
			continue
		}
		r.expire(o.key, now, sick, dead)
	}
	if held > 0 {
		r.log.Debug("removals held: ring views changed recently", "instances", held)
	}
}

// viewsSettled reports whether the ring views have agreed long enough for
// expiry to remove instances (see expireOnce).
func (r *Registry) viewsSettled(now time.Time) bool {
	hold := r.cfg.SettleHold
	if hold == 0 {
		hold = r.cfg.DeleteTimeout / 2
	}
	return now.Sub(r.cluster.ViewsSettledSince()) >= hold
}

// expire writes one change to key: the sick instances unhealthy, the dead
// removed, each re-checked against a beat that may have arrived meanwhile.
func (r *Registry) expire(key string, now time.Time, sick, dead []string) {
	var nSick, nDead int
	nowBeat := r.beatClock(now)
	err := r.write(key, func(cur *Service, v uint64) (*Service, error) {
		delta := &Service{Instances: map[string]*Instance{}}
		r.beatMu.Lock()
		defer r.beatMu.Unlock()
		for _, ik := range dead {
			in := cur.live(ik)
			if in == nil {
				continue
			}
			rec, ok := r.lastBeat[key][ik]
			if _, _, del := r.timeouts(in); !ok || time.Duration(nowBeat-rec.last) <= del {
				continue
			}
			delta.Instances[ik] = expiredTombstone(in, v)
			delete(r.lastBeat[key], ik)
			nDead++
		}
		for _, ik := range sick {
			in := cur.live(ik)
			if in == nil || !in.Healthy {
				continue
			}
			rec, ok := r.lastBeat[key][ik]
			if _, bad, _ := r.timeouts(in); !ok || time.Duration(nowBeat-rec.last) <= bad {
				continue
			}
			n := *in
			n.Healthy, n.Version = false, v
			delta.Instances[ik] = &n
			nSick++
		}
		if len(delta.Instances) == 0 {
			return nil, nil
		}
		return delta, nil
	})
	if err != nil {
		r.log.Warn("expire instances", "service", key, "err", err)
		return
	}
	if nSick > 0 || nDead > 0 {
		r.stats.expirations.WithLabelValues("unhealthy").Add(float64(nSick))
		r.stats.expirations.WithLabelValues("removed").Add(float64(nDead))
		r.log.Info("instances expired", "service", key, "unhealthy", nSick, "removed", nDead)
	}
}
