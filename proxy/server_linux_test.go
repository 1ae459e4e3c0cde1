package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// emfileChildEnv makes TestAcceptSurvivesDescriptorExhaustion, run again
// in a child process, play the proxy under a low descriptor limit. The
// limit is per process, so lowering it in the test binary itself would
// starve every other test.
const emfileChildEnv = "XMPP2PROXY_TEST_EMFILE_CHILD"

// emfileUpstreamEnv gives the child the fake upstream's address. The fake
// runs in the parent: under the child's limit its own accept would fail
// too (Linux's accept4 needs a free descriptor before it even looks for a
// connection), and the fake's accept loop ends on the first error.
const emfileUpstreamEnv = "XMPP2PROXY_TEST_EMFILE_UPSTREAM"

// emfileLimit is the child's descriptor limit: a few for the runtime and
// the listeners, the rest for sessions.
const emfileLimit = 64

// emfileConns is how many connections the parent opens: above the limit,
// below the smallest listen backlog Linux defaults to (128), so that every
// connect completes while the child cannot accept.
const emfileConns = 120

// The seen case: open pre-auth streams use up the proxy's descriptors, an
// accept fails with EMFILE, and once they close the proxy must serve again.
func TestAcceptSurvivesDescriptorExhaustion(t *testing.T) {
	if os.Getenv(emfileChildEnv) == "1" {
		runDescriptorStarvedProxy(t)
		return
	}
	t.Parallel()
	fake := startFakeUpstream(t, false)
	cmd := exec.Command(os.Args[0], "-test.run=^TestAcceptSurvivesDescriptorExhaustion$", "-test.count=1")
	cmd.Env = append(os.Environ(), emfileChildEnv+"=1", emfileUpstreamEnv+"="+fake.addr())
	cmd.Stderr = t.Output()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := false
	t.Cleanup(func() {
		if !exited {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})

	// Events in the child's output.
	var (
		out       strings.Builder
		outMu     sync.Mutex
		addrCh    = make(chan string, 1)
		exhausted = make(chan struct{})
		recovered = make(chan struct{})
		outDone   = make(chan struct{})
		ended     = make(chan struct{}, 2*emfileConns)
	)
	go func() {
		defer close(outDone)
		var exhaustedOnce, recoveredOnce sync.Once
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			outMu.Lock()
			out.WriteString(line + "\n")
			outMu.Unlock()
			switch {
			case strings.HasPrefix(line, "ADDR "):
				addrCh <- strings.TrimPrefix(line, "ADDR ")
			case strings.Contains(line, "accepting again"): // names the last error too
				recoveredOnce.Do(func() { close(recovered) })
			case strings.Contains(line, "too many open files"):
				exhaustedOnce.Do(func() { close(exhausted) })
			case strings.Contains(line, `msg="session ended"`):
				select {
				case ended <- struct{}{}:
				default:
				}
			}
		}
	}()
	childOutput := func() string {
		outMu.Lock()
		defer outMu.Unlock()
		return out.String()
	}
	await := func(ch <-chan struct{}, what string) {
		t.Helper()
		select {
		case <-ch:
		case <-outDone:
			t.Fatalf("the child ended before %s", what)
		case <-time.After(waitFor):
			t.Fatalf("timed out waiting until %s", what)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the child's output:\n%s", childOutput())
		}
	})

	var addr string
	select {
	case addr = <-addrCh:
	case <-outDone:
		t.Fatal("the child ended before listening")
	case <-time.After(waitFor):
		t.Fatal("the child never listened")
	}

	// Pre-auth streams (connected, nothing sent) until an accept fails.
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
dialing:
	for range emfileConns {
		select {
		case <-exhausted:
			break dialing
		default:
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial #%d: %v", len(conns)+1, err)
		}
		conns = append(conns, c)
	}
	await(exhausted, "an accept failed with EMFILE")

	// They all go away, and the proxy ends every session it then accepts
	// for them: the new client does not race those for descriptors (the
	// proxy's upstream dial needs one too).
	for _, c := range conns {
		c.Close()
	}
	for i := range conns {
		select {
		case <-ended:
		case <-time.After(waitFor):
			t.Fatalf("%d of %d sessions ended", i, len(conns))
		}
	}
	conns = nil
	// A new client must then be served in full.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := &testClient{t: t, conn: conn, fr: stream.NewFramer(bufio.NewReader(conn), clientLimits)}
	c.login()
	await(recovered, "the proxy said it accepts again")
	conn.Close()

	stdin.Close() // the child shuts down
	<-outDone
	err = cmd.Wait()
	exited = true
	if err != nil {
		t.Fatalf("child: %v", err)
	}
}

// runDescriptorStarvedProxy is the child: a proxy in front of the parent's
// fake upstream, under emfileLimit descriptors, until its stdin closes.
func runDescriptorStarvedProxy(t *testing.T) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	lim.Cur = emfileLimit
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Upstream = os.Getenv(emfileUpstreamEnv)
	cfg.UpstreamTLS = UpstreamTLSNone
	cfg.Domains = []string{"localhost"}
	cfg.AllowPlaintext = true
	// The parent watches this log for EMFILE, sessions ending and the
	// recovery.
	log := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := NewServer(cfg, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("ADDR %s\n", srv.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}
