package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
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

// getJSON GETs http://addr+path and decodes a 2xx JSON body into v.
func getJSON(client *http.Client, addr, path string, v any) error {
	url := addr
	if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
		url = "http://" + url
	}
	resp, err := client.Get(url + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read %s%s: %w", addr, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("GET %s%s: %s: %s", addr, path, resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("decode %s%s: %w", addr, path, err)
	}
	return nil
}
