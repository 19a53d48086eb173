package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

// httpFlag is the --http flag of the client commands.
func httpFlag() cli.Flag {
	return &cli.StringFlag{Name: "http", Value: "127.0.0.1:8848", Usage: "HTTP host:port of any member", EnvVars: env("http")}
}

func timeoutFlag() cli.Flag {
	return &cli.DurationFlag{Name: "timeout", Value: 5 * time.Second, Usage: "bound on each request"}
}

// baseURL turns host:port into http://host:port (an explicit scheme is kept).
func baseURL(addr string) string {
	if strings.HasPrefix(addr, "http://") || strings.HasPrefix(addr, "https://") {
		return strings.TrimSuffix(addr, "/")
	}
	return "http://" + addr
}

// call sends method to addr+path with an optional urlencoded form body and
// returns the body of a 2xx answer; other statuses are errors quoting the body.
func call(client *http.Client, method, addr, path string, form url.Values) ([]byte, error) {
	var rd io.Reader
	if form != nil {
		rd = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, baseURL(addr)+path, rd)
	if err != nil {
		return nil, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("read %s %s%s: %w", method, addr, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s %s%s: %s: %s", method, addr, path, resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

// getJSON GETs http://addr+path and decodes a 2xx JSON body into v.
func getJSON(client *http.Client, addr, path string, v any) error {
	body, err := call(client, http.MethodGet, addr, path, nil)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("decode %s%s: %w", addr, path, err)
	}
	return nil
}
