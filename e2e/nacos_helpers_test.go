package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"
)

// This file holds what the Nacos and load tests share: the nacos_driver
// process (one application using the real nacos-sdk-go client), Nacos API
// helpers over HTTP, a metrics reader and percentiles.

// buildNacosDriver compiles ./nacos_driver (without -race: it runs the
// client library, not our code) into a test temp dir.
func buildNacosDriver(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "nacos_driver")
	cmd := exec.Command("go", "build", "-o", out, "./nacos_driver")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./nacos_driver: %v\n%s", err, b)
	}
	return out
}

// sdkHost is an instance as the driver reports it.
type sdkHost struct {
	IP         string            `json:"ip"`
	Port       uint64            `json:"port"`
	Healthy    bool              `json:"healthy"`
	Enabled    bool              `json:"enabled"`
	Weight     float64           `json:"weight"`
	InstanceID string            `json:"instanceId"`
	Metadata   map[string]string `json:"metadata"`
}

// sdkRequest is one driver command (see nacos_driver/nacos_driver.go).
type sdkRequest struct {
	ID          int               `json:"id"`
	Op          string            `json:"op"`
	Service     string            `json:"service"`
	Group       string            `json:"group,omitempty"`
	IP          string            `json:"ip,omitempty"`
	Port        uint64            `json:"port,omitempty"`
	Weight      float64           `json:"weight,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	HealthyOnly bool              `json:"healthyOnly,omitempty"`
	PageSize    uint32            `json:"pageSize,omitempty"`
}

// sdkReply is a driver answer or (Event != "") a subscribe callback.
type sdkReply struct {
	ID      int       `json:"id"`
	Event   string    `json:"event"`
	Err     string    `json:"err"`
	OK      bool      `json:"ok"`
	Service string    `json:"service"`
	Hosts   []sdkHost `json:"hosts"`
	Count   int64     `json:"count"`
	Doms    []string  `json:"doms"`
	at      time.Time
}

// sdkApp is one nacos_driver process: an application with one naming
// client pointed at one distrod node. Kill stops the application, and with
// it the client's beats.
type sdkApp struct {
	t    *testing.T
	Name string
	cmd  *exec.Cmd
	in   io.WriteCloser
	done chan struct{} // closed when stdout reached EOF and the reader ended
	kill sync.Once

	mu      sync.Mutex
	nextID  int
	pending map[int]chan sdkReply
	events  []sdkReply
}

// startSDKApp starts the driver against node, with the client's log and
// cache in a temp dir. The process is killed by PID when the test ends.
func startSDKApp(t *testing.T, driver, name string, node *Node) *sdkApp {
	t.Helper()
	dir := t.TempDir()
	return startDriverApp(t, name, dir, exec.Command(driver, "-server", node.HTTPAddr, "-dir", dir))
}

// startDriverApp starts cmd, a driver speaking nacos_driver's protocol (the
// Go one, or npm_driver's), as the application name with its files in dir.
func startDriverApp(t *testing.T, name, dir string, cmd *exec.Cmd) *sdkApp {
	t.Helper()
	stderr := &bytes.Buffer{}
	cmd.Stderr = &nacosStderr{w: stderr}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatalf("%s: stdin: %v", name, err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("%s: stdout: %v", name, err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: start driver: %v", name, err)
	}
	a := &sdkApp{t: t, Name: name, cmd: cmd, in: in, done: make(chan struct{}), pending: map[int]chan sdkReply{}}
	go a.read(out)
	t.Cleanup(func() {
		a.Kill()
		if t.Failed() {
			t.Logf("---- stderr of %s ----\n%s", name, cmd.Stderr.(*nacosStderr).String())
			if b, err := os.ReadFile(filepath.Join(dir, "log", "nacos-sdk.log")); err == nil {
				t.Logf("---- nacos-sdk.log of %s ----\n%s", name, b)
			}
		}
	})
	return a
}

type nacosStderr struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *nacosStderr) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *nacosStderr) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}

func (a *sdkApp) read(out io.Reader) {
	defer close(a.done)
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var r sdkReply
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			a.t.Logf("%s: undecodable line %q: %v", a.Name, sc.Text(), err)
			continue
		}
		r.at = time.Now()
		a.mu.Lock()
		if r.Event != "" {
			a.events = append(a.events, r)
		} else if ch, ok := a.pending[r.ID]; ok {
			delete(a.pending, r.ID)
			ch <- r
		}
		a.mu.Unlock()
	}
}

// call sends req and waits (bounded) for its reply; a client-side error is
// returned as an error.
func (a *sdkApp) call(req sdkRequest) (sdkReply, error) {
	ch := make(chan sdkReply, 1)
	a.mu.Lock()
	a.nextID++
	req.ID = a.nextID
	a.pending[req.ID] = ch
	a.mu.Unlock()
	b, err := json.Marshal(req)
	if err != nil {
		return sdkReply{}, err
	}
	if _, err := a.in.Write(append(b, '\n')); err != nil {
		return sdkReply{}, fmt.Errorf("%s: %s: write: %w", a.Name, req.Op, err)
	}
	select {
	case r := <-ch:
		if r.Err != "" {
			return r, fmt.Errorf("%s: %s %s: %s", a.Name, req.Op, req.Service, r.Err)
		}
		return r, nil
	case <-a.done:
		return sdkReply{}, fmt.Errorf("%s: %s: driver exited", a.Name, req.Op)
	case <-time.After(20 * time.Second):
		return sdkReply{}, fmt.Errorf("%s: %s: no reply within 20s", a.Name, req.Op)
	}
}

// mustCall is call failing the test on error.
func (a *sdkApp) mustCall(req sdkRequest) sdkReply {
	a.t.Helper()
	r, err := a.call(req)
	if err != nil {
		a.t.Fatal(err)
	}
	return r
}

// Events returns a copy of the subscribe callbacks received so far.
func (a *sdkApp) Events() []sdkReply {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]sdkReply(nil), a.events...)
}

// Kill sends SIGKILL to the driver by PID (once: the PID is not reused
// while the process is unreaped) and waits for it and its reader.
func (a *sdkApp) Kill() {
	a.kill.Do(func() {
		_ = syscall.Kill(a.cmd.Process.Pid, syscall.SIGKILL)
		a.in.Close()
		select {
		case <-a.done:
		case <-time.After(10 * time.Second):
			a.t.Errorf("%s: driver output not closed 10s after SIGKILL", a.Name)
		}
		_ = a.cmd.Wait()
	})
}

// nacosHost is one host of GET /nacos/v1/ns/instance/list.
type nacosHost struct {
	IP       string            `json:"ip"`
	Port     int               `json:"port"`
	Healthy  bool              `json:"healthy"`
	Enabled  bool              `json:"enabled"`
	Metadata map[string]string `json:"metadata"`
}

// nacosList asks node for service's instances (healthy or not).
func nacosList(hc *http.Client, n *Node, service string) ([]nacosHost, error) {
	q := url.Values{"serviceName": {service}, "healthyOnly": {"false"}}
	status, body, err := n.DoWith(hc, http.MethodGet, "/nacos/v1/ns/instance/list?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("%s: list %s: %d %s", n.Name, service, status, bytes.TrimSpace(body))
	}
	var resp struct {
		Hosts []nacosHost `json:"hosts"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, fmt.Errorf("%s: list %s: %w", n.Name, service, err)
	}
	return resp.Hosts, nil
}

// nacosFindHost returns the host ip:port in hosts, or nil.
func nacosFindHost(hosts []nacosHost, ip string, port int) *nacosHost {
	for i := range hosts {
		if hosts[i].IP == ip && hosts[i].Port == port {
			return &hosts[i]
		}
	}
	return nil
}

// nacosHTTPClient is an HTTP client that reuses connections (the load test
// sends thousands of requests a second); its idle connections are closed when
// the test ends, so no goroutine outlives it.
func nacosHTTPClient(t *testing.T) *http.Client {
	tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Timeout: 5 * time.Second, Transport: tr}
}

// nacosPercentile returns the p-th nacosPercentile (0..100, nearest rank) of ds.
func nacosPercentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(float64(len(s))*p/100+0.5) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(s) {
		i = len(s) - 1
	}
	return s[i]
}

// nacosDist formats median / p99 / max of ds.
func nacosDist(ds []time.Duration) string {
	r := func(d time.Duration) time.Duration {
		if d >= time.Millisecond {
			return d.Round(10 * time.Microsecond)
		}
		return d.Round(time.Microsecond)
	}
	return fmt.Sprintf("median %s, p99 %s, max %s (n=%d)", r(nacosPercentile(ds, 50)), r(nacosPercentile(ds, 99)), r(nacosPercentile(ds, 100)), len(ds))
}
