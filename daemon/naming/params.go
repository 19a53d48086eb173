package naming

import (
	"bytes"
	"encoding/json"
	"math"
	"net"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/distrod/distrod/daemon/httpx"
)

// params are a request's parameters from the query string and the form body;
// the query wins, as a servlet's getParameter does.
type params struct {
	m map[string]string
}

// parseParams reads the raw query and, for form (or untyped) bodies, the raw
// body. Both are split leniently (see splitQuery) because nacos-sdk-go v1
// sends values unescaped: raw JSON metadata, '@@' in service names.
func parseParams(ctx *fasthttp.RequestCtx) *params {
	p := &params{m: map[string]string{}}
	ct := string(ctx.Request.Header.ContentType())
	if body := ctx.PostBody(); len(body) > 0 && (ct == "" || strings.HasPrefix(ct, "application/x-www-form-urlencoded")) {
		splitQuery(string(body), p.m)
	}
	splitQuery(string(ctx.URI().QueryString()), p.m) // query overrides body
	return p
}

// splitQuery adds the pairs of a query string to m (later pairs win over
// earlier ones within one string only if the earlier is absent: first wins).
//
// It is a superset of url.ParseQuery for well-formed input. For unescaped
// input it splits only at an '&' that starts a new "name=" (or bare "name"),
// so '&' and '=' inside raw JSON stay in the value; a value that is not a
// valid escape sequence is kept raw instead of being dropped.
//
// It runs in time linear in len(s): each pair's name and a raw JSON value
// are scanned once, and after a value whose braces do not balance (scanned to
// the end of s) no later value is read as JSON, so a body of many "a={&"
// cannot make every pair rescan the rest of it.
func splitQuery(s string, m map[string]string) {
	first := map[string]bool{}
	tryJSON := true
	for len(s) > 0 {
		end, unbalanced := nextSplit(s, tryJSON)
		if unbalanced {
			tryJSON = false
		}
		seg := s[:end]
		if end < len(s) {
			s = s[end+1:]
		} else {
			s = ""
		}
		if seg == "" {
			continue
		}
		k, v, _ := strings.Cut(seg, "=")
		k, v = unescape(k), unescape(v)
		if k == "" || first[k] {
			continue
		}
		first[k] = true
		m[k] = v
	}
}

// nextSplit returns the index of the '&' that ends the first pair of s, or
// len(s). With tryJSON, a raw JSON object value is skipped whole, so '&'
// inside it (say in a URL in metadata) does not split it; unbalanced reports
// a value that starts like one but whose braces never close in s.
func nextSplit(s string, tryJSON bool) (end int, unbalanced bool) {
	start := 0
	// Only the first pair's '=' counts: IndexAny stops at the first '&' too,
	// so this costs the length of the name, not of s.
	if eq := strings.IndexAny(s, "=&"); tryJSON && eq >= 0 && s[eq] == '=' && eq+1 < len(s) && s[eq+1] == '{' {
		if n := jsonObjectEnd(s[eq+1:]); n > 0 {
			start = eq + 1 + n
		} else {
			unbalanced = true
		}
	}
	for i := start; i < len(s); i++ {
		if s[i] != '&' {
			continue
		}
		rest := s[i+1:]
		if rest == "" || rest[0] == '&' {
			return i, unbalanced
		}
		j := 0
		for j < len(rest) && isNameByte(rest[j], j == 0) {
			j++
		}
		if j > 0 && (j == len(rest) || rest[j] == '=' || rest[j] == '&') {
			return i, unbalanced
		}
	}
	return len(s), unbalanced
}

// jsonObjectEnd returns the length of the JSON object s starts with, or -1
// when its braces do not balance.
func jsonObjectEnd(s string) int {
	depth, inStr, esc := 0, false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case esc:
			esc = false
		case inStr && c == '\\':
			esc = true
		case c == '"':
			inStr = !inStr
		case inStr:
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			depth--
			if depth == 0 {
				return i + 1
			}
		}
	}
	return -1
}

func isNameByte(c byte, first bool) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		return true
	case c >= '0' && c <= '9', c == '.', c == '-', c == '%':
		return !first || c == '%'
	}
	return false
}

func unescape(s string) string {
	if !strings.ContainsAny(s, "%+") {
		return s
	}
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
}

// str returns the trimmed parameter, "" when absent.
func (p *params) str(name string) string { return strings.TrimSpace(p.m[name]) }

// has reports whether the parameter is present and not blank.
func (p *params) has(name string) bool { return p.str(name) != "" }

func (p *params) required(name string) (string, error) {
	v := p.str(name)
	if v == "" {
		return "", httpx.BadRequest("Param '%s' is required.", name)
	}
	return v, nil
}

// boolOr is commons-lang BooleanUtils.toBoolean, as Nacos parses flags; def when blank.
func (p *params) boolOr(name string, def bool) bool {
	v := p.str(name)
	if v == "" {
		return def
	}
	return parseBool(v)
}

func parseBool(v string) bool {
	switch strings.ToLower(v) {
	case "true", "on", "yes", "y", "t":
		return true
	}
	return false
}

func (p *params) intOr(name string, def, lo, hi int) (int, error) {
	v := p.str(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, httpx.BadRequest("Param '%s' is illegal, it should be an integer between %d and %d", name, lo, hi)
	}
	return n, nil
}

// Limits of names. Nacos bounds service names at 512; distrod is stricter on
// namespace and group so a key stays small.
const (
	maxNamespaceLen = 128
	maxGroupLen     = 128
	maxServiceLen   = 512
	maxClusterLen   = 64
	maxHostLen      = 253
	maxSelectorLen  = 1024
	maxWeight       = 10000.0
)

var (
	serviceNameRe = regexp.MustCompile(`^[0-9a-zA-Z@.:_-]+$`)
	groupRe       = regexp.MustCompile(`^[0-9a-zA-Z.:_-]+$`)
	namespaceRe   = regexp.MustCompile(`^[0-9a-zA-Z._-]+$`)
	clusterRe     = regexp.MustCompile(`^[0-9a-zA-Z-]+$`)
	digitsDotsRe  = regexp.MustCompile(`^[0-9.]+$`)
	hostLabelRe   = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$`)
)

// serviceRef names a service.
type serviceRef struct {
	namespace, group, name string
}

func (s serviceRef) key() string     { return datumKey(s.namespace, s.group, s.name) }
func (s serviceRef) grouped() string { return groupedName(s.group, s.name) }

// service reads namespaceId, groupName and serviceName; serviceName may come
// grouped (group@@name), as every Nacos client sends it.
func (p *params) service() (serviceRef, error) {
	var ref serviceRef
	ns, err := p.namespace()
	if err != nil {
		return ref, err
	}
	raw, err := p.required("serviceName")
	if err != nil {
		return ref, err
	}
	return parseServiceName(ns, raw, p.str("groupName"))
}

func (p *params) namespace() (string, error) {
	ns := p.str("namespaceId")
	if ns == "" {
		return DefaultNamespace, nil
	}
	if len(ns) > maxNamespaceLen || !namespaceRe.MatchString(ns) {
		return "", httpx.BadRequest("Param 'namespaceId' is illegal, it can only have these characters: 0-9a-zA-Z._- and at most %d of them", maxNamespaceLen)
	}
	return ns, nil
}

func parseServiceName(ns, raw, groupParam string) (serviceRef, error) {
	ref := serviceRef{namespace: ns, group: groupParam, name: raw}
	if g, n, ok := strings.Cut(raw, groupSep); ok {
		ref.group, ref.name = g, n
	}
	if ref.group == "" {
		ref.group = DefaultGroup
	}
	if ref.name == "" || strings.Contains(ref.name, groupSep) {
		return ref, httpx.BadRequest("Param 'serviceName' is illegal, it should be format as 'groupName@@serviceName'")
	}
	if len(ref.name) > maxServiceLen || !serviceNameRe.MatchString(ref.name) {
		return ref, httpx.BadRequest("Param 'serviceName' is illegal, illegal characters should not appear in the param (allowed: 0-9a-zA-Z@.:_-, at most %d)", maxServiceLen)
	}
	if len(ref.group) > maxGroupLen || !groupRe.MatchString(ref.group) {
		return ref, httpx.BadRequest("Param 'groupName' is illegal, it can only have these characters: 0-9a-zA-Z.:_- and at most %d of them", maxGroupLen)
	}
	return ref, nil
}

// cluster reads clusterName, falling back to cluster, then DEFAULT.
func (p *params) cluster() (string, error) {
	c := p.str("clusterName")
	if c == "" {
		c = p.str("cluster")
	}
	if c == "" {
		return DefaultCluster, nil
	}
	return c, checkCluster(c)
}

func checkCluster(c string) error {
	if len(c) > maxClusterLen || !clusterRe.MatchString(c) {
		return httpx.BadRequest("Param 'clusterName' is illegal, cluster name can only have these characters: 0-9a-zA-Z-, current: %s", truncate(c, 64))
	}
	return nil
}

// checkIP accepts IPv4, IPv6 and DNS host names, like Nacos (which checks
// only strings of digits and dots as IPv4 and lets host names through).
func checkIP(ip string) error {
	bad := httpx.BadRequest("instance format invalid: Your IP address is spelled incorrectly: %s", truncate(ip, 64))
	if ip == "" {
		return httpx.BadRequest("Param 'ip' is required.")
	}
	if digitsDotsRe.MatchString(ip) {
		if a := net.ParseIP(ip); a == nil || a.To4() == nil {
			return bad
		}
		return nil
	}
	if strings.Contains(ip, ":") {
		if net.ParseIP(ip) == nil {
			return bad
		}
		return nil
	}
	if len(ip) > maxHostLen {
		return bad
	}
	for _, label := range strings.Split(ip, ".") {
		if len(label) > 63 || !hostLabelRe.MatchString(label) {
			return bad
		}
	}
	return nil
}

func parsePort(v string) (int, error) {
	if v == "" {
		return 0, httpx.BadRequest("Param 'port' is required.")
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 65535 {
		return 0, httpx.BadRequest("Param 'port' is illegal, it should be an integer between 1 and 65535: %s", truncate(v, 32))
	}
	return n, nil
}

func checkWeight(w float64) error {
	if math.IsNaN(w) || w < 0 || w > maxWeight {
		return httpx.BadRequest("instance format invalid: The weights range from 0.0 to 10000.0")
	}
	return nil
}

func parseWeight(v string) (float64, error) {
	if v == "" {
		return 1, nil
	}
	w, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, httpx.BadRequest("Param 'weight' is illegal, it should be a number: %s", truncate(v, 32))
	}
	if err := checkWeight(w); err != nil {
		return 0, err
	}
	return w + 0, nil // +0 turns -0 into 0 so encodings agree
}

// parseMetadata accepts a JSON object of scalar values or k=v,k2=v2 (Nacos's
// UtilsAndCommons.parseMetadata) and enforces the size limit.
func parseMetadata(raw string, limit int) (map[string]string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return nil, nil
	}
	bad := httpx.BadRequest("metadata format incorrect: %s", truncate(raw, 100))
	m := map[string]string{}
	if strings.HasPrefix(raw, "{") {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal([]byte(raw), &obj); err != nil {
			return nil, bad
		}
		for k, v := range obj {
			s, ok := scalarString(v)
			if !ok || k == "" {
				return nil, bad
			}
			m[k] = s
		}
	} else {
		for _, kv := range strings.Split(raw, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || strings.TrimSpace(k) == "" {
				return nil, bad
			}
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	if err := checkMetadataSize(m, limit); err != nil {
		return nil, err
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}

func checkMetadataSize(m map[string]string, limit int) error {
	n := 0
	for k, v := range m {
		n += len(k) + len(v)
	}
	if n > limit {
		return httpx.BadRequest("metadata too large: %d bytes, the limit is %d", n, limit)
	}
	return nil
}

// scalarString renders a JSON scalar as the string Jackson would bind to a
// Map<String,String>; objects and arrays are refused.
func scalarString(v json.RawMessage) (string, bool) {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return "", false
	}
	switch v[0] {
	case '"':
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", false
		}
		return s, true
	case '{', '[':
		return "", false
	case 'n':
		return "", string(v) == "null"
	}
	return string(v), true // number or boolean
}

// checkSelector accepts a selector JSON object (Nacos: {"type":"none"} or a label selector).
func checkSelector(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", nil
	}
	var obj map[string]any
	if len(raw) > maxSelectorLen || json.Unmarshal([]byte(raw), &obj) != nil {
		return "", httpx.BadRequest("Param 'selector' is illegal, it should be a JSON object of at most %d bytes", maxSelectorLen)
	}
	var t string
	if s, ok := obj["type"].(string); ok {
		t = s
	}
	if t == "" || t == "none" {
		return "", nil
	}
	return raw, nil
}

func parseThreshold(v string) (float64, error) {
	t, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(t) || t < 0 || t > 1 {
		return 0, httpx.BadRequest("Param 'protectThreshold' is illegal, it should be a number between 0 and 1: %s", truncate(v, 32))
	}
	return t + 0, nil
}

// parseInstance reads the instance of a register or update request (Nacos's
// parseInstance/getIpAddress) and validates every field.
func (p *params) parseInstance(maxMeta int) (*Instance, error) {
	ip, err := p.required("ip")
	if err != nil {
		return nil, err
	}
	if err := checkIP(ip); err != nil {
		return nil, err
	}
	port, err := parsePort(p.str("port"))
	if err != nil {
		return nil, err
	}
	cluster, err := p.cluster()
	if err != nil {
		return nil, err
	}
	w, err := parseWeight(p.str("weight"))
	if err != nil {
		return nil, err
	}
	md, err := parseMetadata(p.m["metadata"], maxMeta)
	if err != nil {
		return nil, err
	}
	enabled := p.boolOr("enable", true)
	if p.has("enabled") {
		enabled = p.boolOr("enabled", true)
	}
	return &Instance{
		IP: ip, Port: port, Cluster: cluster, Weight: w,
		Healthy:   p.boolOr("healthy", true),
		Enabled:   enabled,
		Ephemeral: p.boolOr("ephemeral", true),
		Metadata:  md,
	}, nil
}

// parseAddr reads ip, port and cluster only (deregister, detail).
func (p *params) parseAddr() (ip string, port int, cluster string, err error) {
	if ip, err = p.required("ip"); err != nil {
		return
	}
	if err = checkIP(ip); err != nil {
		return
	}
	if port, err = parsePort(p.str("port")); err != nil {
		return
	}
	cluster, err = p.cluster()
	return
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
