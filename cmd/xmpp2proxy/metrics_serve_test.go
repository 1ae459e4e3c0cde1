package main

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

var metricsAddr = regexp.MustCompile(`msg="serving metrics and health checks" addr=(\S+)`)

// serve --metrics-listen serves /metrics and /healthz, and stops with
// the proxy.
func TestServeWithMetricsListenServesMetricsAndHealth(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(os.Args[0], "serve", "--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1",
		"--upstream-tls", "none", "--domain", "localhost", "--allow-plaintext", "--metrics-listen", "127.0.0.1:0")
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
	addrCh := make(chan string, 1)
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := metricsAddr.FindStringSubmatch(sc.Text()); m != nil {
				addrCh <- m[1]
			}
		}
	}()
	var addr string
	select {
	case addr = <-addrCh:
	case <-logDone:
		t.Fatal("serve ended before serving metrics")
	case <-time.After(waitFor):
		t.Fatal("serve never said where it serves metrics")
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: waitFor}
	for _, tc := range []struct {
		path, want string
		code       int
	}{
		{"/healthz", "ok", http.StatusOK},
		{"/metrics", `xmpp2proxy_setups_total{outcome="ok"} 0`, http.StatusOK},
		{"/readyz", "upstream unreachable", http.StatusServiceUnavailable}, // nothing listens on port 1
	} {
		resp, err := client.Get("http://" + addr + tc.path)
		if err != nil {
			t.Fatalf("GET %s: %v", tc.path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.Contains(string(body), tc.want) {
			t.Errorf("GET %s: %d %.200q, want %d with %q", tc.path, resp.StatusCode, body, tc.code, tc.want)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-logDone
	err = cmd.Wait()
	exited = true
	if err != nil {
		t.Fatalf("serve exited with %v after SIGTERM", err)
	}
	if _, err := client.Get("http://" + addr + "/healthz"); err == nil {
		t.Error("the metrics endpoint answers after serve exited")
	}
}
