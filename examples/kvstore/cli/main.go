// Command cli is a client of the kvstore example's HTTP API:
//
//	cli -servers 127.0.0.1:8001,127.0.0.1:8002,127.0.0.1:8003 put k v
//	cli get k
//	cli append k v
//	cli del k
//	cli status
//
// It sends each request to a server, follows leader hints (421 with
// leader_http) and retries what definitely failed (not the leader, no
// leader yet, busy, a refused connection) on another server until -timeout.
// A write whose outcome is unknown (504 EUNKNOWN, or a request that timed
// out or lost its connection) is not retried, since it may have been
// applied: cli reports it and exits with status 3. Reads are always safe
// to retry.
//
// Exit status: 0 done, 1 failed (or get of a missing key), 2 bad usage,
// 3 outcome unknown.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/asyncraft/asyncraft/examples/kvstore/kvapi"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const (
	exitOK      = 0
	exitFailed  = 1
	exitUsage   = 2
	exitUnknown = 3
)

func usage(fs *flag.FlagSet) {
	fmt.Fprintf(fs.Output(), "usage: cli [flags] put KEY VALUE | append KEY VALUE | get KEY | del KEY | status\n")
	fs.PrintDefaults()
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("cli", flag.ContinueOnError)
	fs.SetOutput(stderr)
	servers := fs.String("servers", "127.0.0.1:8001,127.0.0.1:8002,127.0.0.1:8003", "the nodes' HTTP addresses, host:port,...")
	timeout := fs.Duration("timeout", 15*time.Second, "give up after this long (retries included)")
	fs.Usage = func() { usage(fs) }
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	c := &client{http: &http.Client{}}
	for _, s := range strings.Split(*servers, ",") {
		if s = strings.TrimSpace(s); s != "" {
			c.servers = append(c.servers, s)
		}
	}
	if len(c.servers) == 0 {
		fmt.Fprintln(stderr, "cli: -servers is empty")
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	a := fs.Args()
	var req request
	switch {
	case len(a) == 1 && a[0] == "status":
		return c.status(ctx, stdout, stderr)
	case len(a) == 2 && a[0] == "get":
		req = request{method: http.MethodGet, key: a[1]}
	case len(a) == 2 && (a[0] == "del" || a[0] == "delete"):
		req = request{method: http.MethodDelete, key: a[1], write: true}
	case len(a) == 3 && a[0] == "put":
		req = request{method: http.MethodPut, key: a[1], value: a[2], write: true}
	case len(a) == 3 && a[0] == "append":
		req = request{method: http.MethodPost, key: a[1], value: a[2], write: true, query: "?append=1"}
	default:
		usage(fs)
		return exitUsage
	}
	res, err := c.do(ctx, req)
	var unknown *unknownError
	switch {
	case errors.As(err, &unknown):
		fmt.Fprintf(stderr, "cli: outcome unknown: %v (the write may or may not have been applied)\n", err)
		return exitUnknown
	case err != nil:
		fmt.Fprintln(stderr, "cli:", err)
		return exitFailed
	}
	switch res.code {
	case http.StatusOK:
		var kv struct{ Value string }
		if err := json.Unmarshal(res.body, &kv); err != nil {
			fmt.Fprintf(stderr, "cli: bad response from %s: %v\n", res.server, err)
			return exitFailed
		}
		fmt.Fprintln(stdout, kv.Value)
	case http.StatusNotFound:
		fmt.Fprintf(stderr, "cli: %s: not found\n", req.key)
		return exitFailed
	default:
		fmt.Fprintln(stdout, "OK")
	}
	return exitOK
}

type request struct {
	method, key, value, query string
	write                     bool
}

type response struct {
	server string
	code   int
	body   []byte
}

// unknownError: a write may or may not have been applied.
type unknownError struct{ msg string }

func (e *unknownError) Error() string { return e.msg }

type client struct {
	http    *http.Client
	servers []string
	next    int // index of the next server to try
}

// perRequest bounds one HTTP request (the server answers 504 after its own
// -timeout, 5 s by default).
const perRequest = 8 * time.Second

// do sends req until it gets a definite answer, following leader hints.
func (c *client) do(ctx context.Context, req request) (response, error) {
	target := c.servers[0]
	backoff := 50 * time.Millisecond
	var wait time.Duration
	var last error
	redirects := 0 // in a row, without waiting
	for {
		if ctx.Err() != nil {
			return response{}, fmt.Errorf("gave up: %w (last error: %v)", ctx.Err(), last)
		}
		if wait > 0 {
			select {
			case <-ctx.Done():
				return response{}, fmt.Errorf("gave up: %w (last error: %v)", ctx.Err(), last)
			case <-time.After(wait):
			}
		}
		// By default, retry after a growing pause.
		wait, backoff = backoff, min(2*backoff, time.Second)
		res, err := c.send(ctx, target, req)
		if err != nil {
			if !isDial(err) && req.write {
				return response{}, &unknownError{fmt.Sprintf("%s %s at %s: %v", req.method, req.key, target, err)}
			}
			last = err
			target = c.other(target)
			continue
		}
		switch res.code {
		case http.StatusOK, http.StatusNoContent, http.StatusNotFound:
			return res, nil
		}
		var e kvapi.APIError
		json.Unmarshal(res.body, &e)
		last = fmt.Errorf("%s: %d %s: %s", target, res.code, e.Code, e.Error)
		switch res.code {
		case http.StatusMisdirectedRequest: // not the leader
			if e.LeaderHTTP != "" && e.LeaderHTTP != target {
				target = e.LeaderHTTP
				if redirects < 3 { // go there at once, unless hints go round
					redirects++
					wait = 0
				}
				continue
			}
			target = c.other(target)
		case http.StatusServiceUnavailable: // definitely not applied
			if e.LeaderHTTP != "" {
				target = e.LeaderHTTP
			} else {
				target = c.other(target)
			}
		case http.StatusGatewayTimeout: // outcome unknown
			if req.write {
				return response{}, &unknownError{last.Error()}
			}
			target = c.other(target)
		case http.StatusInternalServerError:
			if req.write {
				return response{}, fmt.Errorf("%v (the node is in error; the write may or may not have been applied)", last)
			}
			target = c.other(target)
		default: // 400, 405, 413, 507: retrying will not help
			return response{}, last
		}
		redirects = 0
	}
}

// other returns a server to try after target, round robin.
func (c *client) other(target string) string {
	for range c.servers {
		s := c.servers[c.next%len(c.servers)]
		c.next++
		if s != target || len(c.servers) == 1 {
			return s
		}
	}
	return target
}

func (c *client) send(ctx context.Context, server string, req request) (response, error) {
	ctx, cancel := context.WithTimeout(ctx, perRequest)
	defer cancel()
	u := "http://" + server + "/kv/" + url.PathEscape(req.key) + req.query
	var body io.Reader
	if req.method == http.MethodPut || req.method == http.MethodPost {
		body = strings.NewReader(req.value)
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, u, body)
	if err != nil {
		return response{}, err
	}
	resp, err := c.http.Do(hr)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return response{}, err
	}
	return response{server: server, code: resp.StatusCode, body: b}, nil
}

// isDial reports whether err happened before the request was sent (the
// connection could not be made): such a request certainly had no effect.
func isDial(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// status prints each server's /status.
func (c *client) status(ctx context.Context, stdout, stderr io.Writer) int {
	code := exitOK
	for _, s := range c.servers {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		req, _ := http.NewRequestWithContext(rctx, http.MethodGet, "http://"+s+"/status", nil)
		resp, err := c.http.Do(req)
		if err != nil {
			cancel()
			fmt.Fprintf(stderr, "%s: %v\n", s, err)
			code = exitFailed
			continue
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		cancel()
		fmt.Fprintf(stdout, "%s: %s\n", s, strings.TrimSpace(string(b)))
	}
	return code
}
