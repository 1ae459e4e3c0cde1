package main

import (
	"bufio"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
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
	cmd := exec.Command(os.Args[0], "serve", "--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1",
		"--upstream-tls", "none", "--domain", "localhost", "--allow-plaintext",
		"--log-level", "debug", "--drain-timeout", "42s")
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	stderr, err := cmd.StderrPipe()
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

	var (
		mu      sync.Mutex
		log     strings.Builder
		addrCh  = make(chan string, 1)
		connCh  = make(chan struct{}, 1)
		logDone = make(chan struct{})
	)
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			log.WriteString(line + "\n")
			mu.Unlock()
			if m := listeningAddr.FindStringSubmatch(line); m != nil {
				addrCh <- m[1]
			}
			if strings.Contains(line, `msg="session started"`) {
				connCh <- struct{}{}
			}
		}
	}()
	output := func() string {
		mu.Lock()
		defer mu.Unlock()
		return log.String()
	}
	var addr string
	select {
	case addr = <-addrCh:
	case <-logDone:
		t.Fatalf("serve ended before listening:\n%s", output())
	case <-time.After(waitFor):
		t.Fatalf("serve never listened:\n%s", output())
	}

	// A client in negotiation: it has not even sent its stream header.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	select {
	case <-connCh:
	case <-time.After(waitFor):
		t.Fatalf("serve never logged the connection:\n%s", output())
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(waitFor))
	got, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("client read: %v (got %q)", err, got)
	}
	if !strings.Contains(string(got), "<system-shutdown") || !strings.HasSuffix(string(got), "</stream:stream>") {
		t.Errorf("the client got %q, want <system-shutdown/> and the stream closed", got)
	}
	<-logDone
	err = cmd.Wait()
	exited = true
	if err != nil {
		t.Fatalf("serve after SIGTERM: %v, want exit 0\n%s", err, output())
	}
	if !strings.Contains(output(), `msg="shutting down" drain=42s`) {
		t.Errorf("serve did not drain with --drain-timeout:\n%s", output())
	}
}
