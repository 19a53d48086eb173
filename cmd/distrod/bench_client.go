package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// benchClient sends the bench's requests with one fasthttp.HostClient per node.
// It dials with a plain net.Dialer (fasthttp's default dialer keeps a cache
// goroutine for the life of the process) and Close waits until the host
// clients' idle-connection cleaners have stopped, so nothing outlives it.
type benchClient struct {
	timeout time.Duration
	maxConn int
	idle    time.Duration

	mu    sync.Mutex
	hosts map[string]*fasthttp.HostClient
}

func newBenchClient(timeout time.Duration, maxConnsPerHost int) *benchClient {
	return &benchClient{timeout: timeout, maxConn: maxConnsPerHost, idle: time.Second, hosts: map[string]*fasthttp.HostClient{}}
}

func (c *benchClient) host(addr string) *fasthttp.HostClient {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.hosts[addr]
	if !ok {
		d := &net.Dialer{Timeout: c.timeout}
		h = &fasthttp.HostClient{
			Addr:                     addr,
			Name:                     "distrod-bench",
			MaxConns:                 c.maxConn,
			MaxIdleConnDuration:      c.idle,
			ReadTimeout:              c.timeout,
			WriteTimeout:             c.timeout,
			MaxConnWaitTimeout:       c.timeout,
			NoDefaultUserAgentHeader: false,
			Dial:                     func(a string) (net.Conn, error) { return d.Dial("tcp", a) },
		}
		c.hosts[addr] = h
	}
	return h
}

// do sends method addr+uri and returns the status and, when keep is set, a copy of the body.
func (c *benchClient) do(method, addr, uri string, keep bool) (int, []byte, error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI("http://" + addr + uri)
	if err := c.host(addr).DoTimeout(req, resp, c.timeout); err != nil {
		return 0, nil, fmt.Errorf("%s %s%s: %w", method, addr, uri, err)
	}
	var body []byte
	if keep {
		body = append([]byte(nil), resp.Body()...)
	}
	return resp.StatusCode(), body, nil
}

// contains sends GET addr+uri and reports whether a 200 body contains needle.
func (c *benchClient) contains(addr, uri string, needle []byte) (bool, error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + addr + uri)
	if err := c.host(addr).DoTimeout(req, resp, c.timeout); err != nil {
		return false, fmt.Errorf("GET %s%s: %w", addr, uri, err)
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		return false, nil
	}
	return bytes.Contains(resp.Body(), needle), nil
}

// getOK is a 2xx GET returning the body.
func (c *benchClient) getOK(addr, uri string) ([]byte, error) {
	status, body, err := c.do(fasthttp.MethodGet, addr, uri, true)
	if err != nil {
		return nil, err
	}
	if status/100 != 2 {
		return nil, fmt.Errorf("GET %s%s: status %d: %s", addr, uri, status, snippetOf(body))
	}
	return body, nil
}

// Close closes every idle connection and waits until the host clients' cleaner
// goroutines noticed (they sleep up to the idle duration).
func (c *benchClient) Close() {
	c.mu.Lock()
	hosts := c.hosts
	c.hosts = map[string]*fasthttp.HostClient{}
	c.mu.Unlock()
	for _, h := range hosts {
		h.CloseIdleConnections()
	}
	if len(hosts) > 0 {
		time.Sleep(c.idle + 50*time.Millisecond) // the cleaners re-check after at most c.idle
	}
}

func snippetOf(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// promSamples parses Prometheus text into name{labels} → value; names without
// labels are keyed by the bare name.
func promSamples(b []byte) map[string]float64 {
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i <= 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out
}

// metrics reads and parses addr's /metrics.
func (c *benchClient) metrics(addr string) (map[string]float64, error) {
	b, err := c.getOK(addr, "/metrics")
	if err != nil {
		return nil, err
	}
	m := promSamples(b)
	if len(m) == 0 {
		return nil, errors.New("GET " + addr + "/metrics: no samples")
	}
	return m, nil
}
