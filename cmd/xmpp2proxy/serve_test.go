package main

import (
	"io"
	"net"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runMainEnv makes the test binary run main() instead of the tests, so a
// test can run the real command in a process of its own and signal it.
const runMainEnv = "XMPP2PROXY_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// waitFor bounds each wait for an expected event; tests never assert how
// fast something happens.
const waitFor = 10 * time.Second

var listeningAddr = regexp.MustCompile(`msg=listening addr=(\S+)`)

// SIGTERM makes serve tell its clients <system-shutdown/>, drain with the
// configured deadline and exit 0.
func TestServeShutsDownGracefullyOnSIGTERM(t *testing.T) {
	t.Parallel()
	p := startServe(t, "--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1",
		"--upstream-tls", "none", "--domain", "localhost", "--allow-plaintext",
		"--log-level", "debug", "--drain-timeout", "42s")
	addr := listeningAddr.FindStringSubmatch(p.wait("msg=listening"))[1]

	// A client in negotiation: it has not even sent its stream header.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	p.wait(`msg="session started"`)

	p.signal(syscall.SIGTERM)
	_ = conn.SetReadDeadline(time.Now().Add(waitFor))
	got, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("client read: %v (got %q)", err, got)
	}
	if !strings.Contains(string(got), "<system-shutdown") || !strings.HasSuffix(string(got), "</stream:stream>") {
		t.Errorf("the client got %q, want <system-shutdown/> and the stream closed", got)
	}
	<-p.ended
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("serve after SIGTERM: %v, want exit 0\n%s", err, p.output())
	}
	if !strings.Contains(p.output(), `msg="shutting down" drain=42s`) {
		t.Errorf("serve did not drain with --drain-timeout:\n%s", p.output())
	}
}
