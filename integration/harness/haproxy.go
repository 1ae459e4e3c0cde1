package harness

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// HAProxy is a private HAProxy (Debian's package) in TCP mode on a free
// loopback port, balancing roundrobin over a fixed list of backends, so
// that consecutive connections go to consecutive backends. It runs in the
// foreground as a child process, with its configuration and its admin
// socket in a temporary directory of its own.
//
// It runs no health checks: an operator drains a backend in the balancer
// before stopping it (Drain), which is what a rolling restart does. A
// connection that still reaches a stopped backend is retried on another
// (option redispatch).
type HAProxy struct {
	dir      string
	sock     string
	addr     string
	backends []string
	// serverOpts follow every server line: send-proxy or send-proxy-v2.
	serverOpts string

	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan struct{}
	err    error // why the process ended, once exited is closed
}

// haproxyBackend is the backend section's name in the configuration.
const haproxyBackend = "proxies"

// StartHAProxy starts HAProxy in front of backends (HOST:PORT each) and
// returns once its listener and its admin socket are up.
func StartHAProxy(ctx context.Context, backends ...string) (*HAProxy, error) {
	return startHAProxy(ctx, "", backends)
}

// StartHAProxySendingPROXY is StartHAProxy with HAProxy opening every
// connection to a backend with a PROXY protocol header of version 1
// (send-proxy) or 2 (send-proxy-v2) that names the client.
func StartHAProxySendingPROXY(ctx context.Context, version int, backends ...string) (*HAProxy, error) {
	opt := map[int]string{1: "send-proxy", 2: "send-proxy-v2"}[version]
	if opt == "" {
		return nil, fmt.Errorf("haproxy: no PROXY protocol version %d", version)
	}
	return startHAProxy(ctx, " "+opt, backends)
}

func startHAProxy(ctx context.Context, serverOpts string, backends []string) (*HAProxy, error) {
	if len(backends) == 0 {
		return nil, fmt.Errorf("haproxy: no backends")
	}
	if err := EnsureInstalled("haproxy", "haproxy"); err != nil {
		return nil, err
	}
	// A short path: a unix socket's path is limited to 107 bytes.
	dir, err := os.MkdirTemp("", "xmpp2proxy-haproxy-")
	if err != nil {
		return nil, err
	}
	h := &HAProxy{dir: dir, sock: filepath.Join(dir, "admin.sock"), backends: backends, serverOpts: serverOpts, out: &syncBuffer{max: 64 << 10}, exited: make(chan struct{})}
	if err := h.start(ctx); err != nil {
		log := h.Log()
		_ = h.Stop()
		return nil, fmt.Errorf("start haproxy: %w\n%s", err, log)
	}
	return h, nil
}

func (h *HAProxy) start(ctx context.Context) error {
	port, err := FreePort()
	if err != nil {
		return err
	}
	h.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cfg := filepath.Join(h.dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(h.config()), 0o600); err != nil {
		return err
	}
	// Check the configuration first: its errors are clearer that way.
	if out, err := exec.CommandContext(ctx, "haproxy", "-c", "-q", "-f", cfg).CombinedOutput(); err != nil {
		return fmt.Errorf("haproxy -c: %w\n%s", err, out)
	}
	// -db: stay in the foreground, no daemon, no master process.
	h.cmd = exec.Command("haproxy", "-db", "-f", cfg)
	h.cmd.Dir = h.dir
	h.cmd.Stdout, h.cmd.Stderr = h.out, h.out
	if err := h.cmd.Start(); err != nil {
		return err
	}
	go func() {
		h.err = h.cmd.Wait()
		close(h.exited)
	}()
	// HAProxy binds every listener, the admin socket included, before it
	// serves any: once the socket shows the frontend open, so is the
	// port. Asking the socket, unlike dialling the port, makes no
	// connection to a backend.
	for {
		if st, err := h.stat(); err == nil {
			for _, s := range st {
				if s.Proxy == "xmpp" && s.Name == "FRONTEND" && s.Status == "OPEN" {
					return nil
				}
			}
		}
		select {
		case <-h.exited:
			return fmt.Errorf("haproxy exited: %v", h.err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (h *HAProxy) config() string {
	var b strings.Builder
	fmt.Fprintf(&b, `global
	maxconn 4096
	# One thread: the roundrobin order is the order connections arrive in.
	nbthread 1
	stats socket %s mode 600 level admin

defaults
	mode tcp
	timeout connect 5s
	timeout client 10m
	timeout server 10m
	# A connection refused by a stopped backend goes to another one.
	retries 3
	option redispatch 1

frontend xmpp
	bind %s
	default_backend %s

backend %s
	balance roundrobin
`, h.sock, h.addr, haproxyBackend, haproxyBackend)
	for i, addr := range h.backends {
		fmt.Fprintf(&b, "\tserver %s %s%s\n", h.serverName(i), addr, h.serverOpts)
	}
	return b.String()
}

func (h *HAProxy) serverName(i int) string { return "p" + strconv.Itoa(i) }

// Addr is the balancer's client-facing address.
func (h *HAProxy) Addr() string { return h.addr }

// ServerStat is one row of HAProxy's `show stat`.
type ServerStat struct {
	Proxy, Name string
	// Status is OPEN for a frontend; for a server without health checks
	// "no check" while it takes connections, MAINT once drained.
	Status string
	// Current and Total count the connections to the server now and since
	// the start.
	Current, Total int
}

// Servers returns the backend servers' rows, in the order of the backends
// given to StartHAProxy.
func (h *HAProxy) Servers() ([]ServerStat, error) {
	st, err := h.stat()
	if err != nil {
		return nil, err
	}
	out := make([]ServerStat, len(h.backends))
	for i := range h.backends {
		found := false
		for _, s := range st {
			if s.Proxy == haproxyBackend && s.Name == h.serverName(i) {
				out[i], found = s, true
			}
		}
		if !found {
			return nil, fmt.Errorf("haproxy: no row for server %s", h.serverName(i))
		}
	}
	return out, nil
}

// Drain puts backend i into maintenance, so that the balancer sends it no
// new connection (those it has stay), and waits until `show stat` says so.
func (h *HAProxy) Drain(ctx context.Context, i int) error {
	return h.setState(ctx, i, "maint", func(s string) bool { return s == "MAINT" })
}

// Undrain takes backend i out of maintenance and waits until `show stat`
// says it takes connections again.
func (h *HAProxy) Undrain(ctx context.Context, i int) error {
	return h.setState(ctx, i, "ready", func(s string) bool { return s != "MAINT" && !strings.HasPrefix(s, "DOWN") })
}

func (h *HAProxy) setState(ctx context.Context, i int, state string, reached func(status string) bool) error {
	if i < 0 || i >= len(h.backends) {
		return fmt.Errorf("haproxy: no backend %d", i)
	}
	out, err := h.command(fmt.Sprintf("set server %s/%s state %s", haproxyBackend, h.serverName(i), state))
	if err != nil {
		return err
	}
	if strings.TrimSpace(out) != "" {
		return fmt.Errorf("haproxy: set server state %s: %s", state, out)
	}
	// The command takes effect at once; polling the state, bounded by
	// ctx, is what makes that an observed fact rather than an assumption.
	for {
		st, err := h.Servers()
		if err != nil {
			return err
		}
		if reached(st[i].Status) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("haproxy: %s is %q, waiting for %s: %w", h.serverName(i), st[i].Status, state, ctx.Err())
		case <-h.exited:
			return fmt.Errorf("haproxy exited: %v", h.err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// stat parses `show stat`.
func (h *HAProxy) stat() ([]ServerStat, error) {
	out, err := h.command("show stat")
	if err != nil {
		return nil, err
	}
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(out, "# ")))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil || len(rows) == 0 {
		return nil, fmt.Errorf("haproxy: show stat: %v: %q", err, out)
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	field := func(row []string, name string) string {
		if i, ok := col[name]; ok && i < len(row) {
			return row[i]
		}
		return ""
	}
	var st []ServerStat
	for _, row := range rows[1:] {
		cur, _ := strconv.Atoi(field(row, "scur"))
		tot, _ := strconv.Atoi(field(row, "stot"))
		st = append(st, ServerStat{Proxy: field(row, "pxname"), Name: field(row, "svname"), Status: field(row, "status"), Current: cur, Total: tot})
	}
	return st, nil
}

// command sends one command to the admin socket and returns the answer;
// HAProxy closes the connection after answering.
func (h *HAProxy) command(cmd string) (string, error) {
	c, err := net.DialTimeout("unix", h.sock, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, cmd+"\n"); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

// Log returns the tail of HAProxy's output, for test failures.
func (h *HAProxy) Log() string { return h.out.String() }

// Stop ends HAProxy (SIGTERM: a hard stop that closes every connection it
// relays), waits for it, and removes its directory.
func (h *HAProxy) Stop() error {
	var err error
	if h.cmd != nil && h.cmd.Process != nil {
		_ = h.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-h.exited:
		case <-time.After(10 * time.Second):
			_ = h.cmd.Process.Kill()
			<-h.exited
			err = fmt.Errorf("haproxy did not stop on SIGTERM")
		}
	}
	if rerr := os.RemoveAll(h.dir); err == nil {
		err = rerr
	}
	return err
}

// syncBuffer keeps the last max bytes written to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if over := b.buf.Len() - b.max; over > 0 {
		b.buf.Next(over)
	}
	return len(p), nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
