package naming

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// The /instance/list answer of a service is rendered once per (clusters,
// healthyOnly) and kept on the service's store entry. Entries are immutable
// and replaced on every change of the datum (mergeWriteLocked, sweepKey), so a change
// invalidates the cache by construction. Only cacheMillis (push
// subscription) and env (echoed) vary per request; they are spliced in
// between the cached parts. lastRefTime is the state's (refTimeOf), spliced
// in the same way.
//
// The cache is bounded: at most maxListsPerEntry variants per service, and
// Config.ListCacheBytes in all; beyond that answers are rendered uncached.

// maxListsPerEntry bounds the cached variants of one service: clusters is
// client-controlled.
const maxListsPerEntry = 8

type listKey struct {
	clusters    string
	healthyOnly bool
}

// renderedList is a list answer cut around its per-request fields:
// head cacheMillis mid lastRefTime tail env meta.
type renderedList struct {
	head, mid, tail, meta []byte
	refTime               int64 // lastRefTime: refTimeOf the rendered state
}

// refTimeOf is the lastRefTime of e's answers and pushes: the microsecond of
// its datum version (nil: 0). Clients compare it with the one they hold,
// across answers from different nodes too (nacos-sdk-go v1.1.6 picks a server
// at random per request, and isServiceInstanceChanged skips the callback of
// an answer whose lastRefTime is lower; the Java and npm clients log "out of
// date data received"). Nacos sends the answer's own time, which goes back
// between nodes by their clock skew and makes a lagging node's older state
// look newer. The version is the highest one in the value, a merge only adds
// to it, and versions are never reused (the hybrid clock, across restarts
// too): so one state answers the same value on every node, and a later state
// one at least as high. Microseconds stay below 2^53, exact for JavaScript
// clients, and are not compared with a clock by any client.
func refTimeOf(e *entry) int64 {
	if e == nil {
		return 0
	}
	return int64(e.datum.Version / uint64(time.Microsecond))
}

func (l *renderedList) size() int64 {
	return int64(len(l.head) + len(l.mid) + len(l.tail) + len(l.meta))
}

// appendTo appends the answer with its per-request fields.
func (l *renderedList) appendTo(dst []byte, cacheMillis int64, env string) []byte {
	dst = append(dst, l.head...)
	dst = strconv.AppendInt(dst, cacheMillis, 10)
	dst = append(dst, l.mid...)
	dst = strconv.AppendInt(dst, l.refTime, 10)
	dst = append(dst, l.tail...)
	dst = appendJSONString(dst, env)
	return append(dst, l.meta...)
}

// writeTo appends the answer to resp's body, as appendTo does, without a copy in between.
func (a *listAnswer) writeTo(resp *fasthttp.Response) {
	var num [20]byte
	resp.AppendBody(a.list.head)
	resp.AppendBody(strconv.AppendInt(num[:0], a.cacheMillis, 10))
	resp.AppendBody(a.list.mid)
	resp.AppendBody(strconv.AppendInt(num[:0], a.list.refTime, 10))
	resp.AppendBody(a.list.tail)
	if a.env == "" {
		resp.AppendBodyString(`""`)
	} else {
		resp.AppendBody(appendJSONString(nil, a.env))
	}
	resp.AppendBody(a.list.meta)
}

// listAnswer is the handler result of /instance/list; render appends it to
// the response body without building it in between.
type listAnswer struct {
	list        *renderedList
	cacheMillis int64
	env         string
}

// entryLists is an entry's cache of rendered lists.
type entryLists struct {
	mu      sync.RWMutex
	retired bool // the entry was replaced: cache nothing more
	m       map[listKey]*renderedList
	bytes   int64
}

// retireListsLocked drops e's cached lists and returns their bytes to the budget;
// called when e leaves the store. The caller holds r.mu for writing.
func (r *Registry) retireListsLocked(e *entry) {
	if e == nil {
		return
	}
	e.lists.mu.Lock()
	e.lists.retired = true
	r.listCacheUsed.Add(-e.lists.bytes)
	e.lists.m, e.lists.bytes = nil, 0
	e.lists.mu.Unlock()
}

// renderedList returns the rendered list of a service, from the cache when it can.
func (r *Registry) renderedList(ref serviceRef, clusters string, healthyOnly bool) (*renderedList, error) {
	r.mu.RLock()
	e := r.entries[ref.key()]
	r.mu.RUnlock()
	if e == nil || !e.exists {
		return renderList(r.listOf(ref, e, clusters, healthyOnly))
	}
	k := listKey{clusters: clusters, healthyOnly: healthyOnly}
	e.lists.mu.RLock()
	l := e.lists.m[k]
	e.lists.mu.RUnlock()
	if l != nil {
		return l, nil
	}
	l, err := renderList(r.listOf(ref, e, clusters, healthyOnly))
	if err != nil {
		return nil, err
	}
	size := l.size()
	e.lists.mu.Lock()
	defer e.lists.mu.Unlock()
	if cur := e.lists.m[k]; cur != nil {
		return cur, nil // rendered meanwhile by another request
	}
	if e.lists.retired || len(e.lists.m) >= maxListsPerEntry {
		return l, nil
	}
	if r.listCacheUsed.Add(size) > r.cfg.ListCacheBytes {
		r.listCacheUsed.Add(-size)
		return l, nil
	}
	if e.lists.m == nil {
		e.lists.m = make(map[listKey]*renderedList, 1)
	}
	k.clusters = strings.Clone(clusters) // do not pin the request's query string
	e.lists.m[k] = l
	e.lists.bytes += size
	return l, nil
}

// renderList renders res (whose per-request fields are ignored) with
// encoding/json, field by field in listResult's order, so that the answer is
// byte for byte json.Marshal(res) (TestListCacheRendersLikeEncodingJSON).
func renderList(res *listResult) (*renderedList, error) {
	var err error
	js := func(dst []byte, v any) []byte {
		b, e := json.Marshal(v)
		if e != nil && err == nil {
			err = fmt.Errorf("naming: render list of %s: %w", res.Name, e)
		}
		return append(dst, b...)
	}
	l := &renderedList{refTime: res.LastRefTime}
	h := append([]byte(nil), `{"name":`...)
	h = js(h, res.Name)
	h = append(h, `,"groupName":`...)
	h = js(h, res.GroupName)
	h = append(h, `,"clusters":`...)
	h = js(h, res.Clusters)
	l.head = append(h, `,"cacheMillis":`...)

	m := append([]byte(nil), `,"hosts":`...)
	m = js(m, res.Hosts)
	l.mid = append(m, `,"lastRefTime":`...)

	t := append([]byte(nil), `,"checksum":`...)
	t = js(t, res.Checksum)
	t = append(t, `,"allIPs":`...)
	t = strconv.AppendBool(t, res.AllIPs)
	t = append(t, `,"reachProtectionThreshold":`...)
	t = strconv.AppendBool(t, res.ReachProtectionThreshold)
	t = append(t, `,"valid":`...)
	t = strconv.AppendBool(t, res.Valid)
	t = append(t, `,"dom":`...)
	t = js(t, res.Dom)
	t = append(t, `,"useSpecifiedURL":`...)
	t = strconv.AppendBool(t, res.UseSpecifiedURL)
	l.tail = append(t, `,"env":`...)

	mt := append([]byte(nil), `,"metadata":`...)
	mt = js(mt, res.Metadata)
	l.meta = append(mt, '}')
	if err != nil {
		return nil, err
	}
	return l, nil
}

// appendJSONString appends s as encoding/json writes it.
func appendJSONString(dst []byte, s string) []byte {
	if s == "" {
		return append(dst, `""`...)
	}
	b, _ := json.Marshal(s) // a string cannot fail
	return append(dst, b...)
}
