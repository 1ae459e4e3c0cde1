package main

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

var metricsAddr = regexp.MustCompile(`msg="serving metrics and health checks" addr=(\S+)`)

// serve --metrics-listen serves /metrics and /healthz, and stops with
// the proxy.
func TestServeWithMetricsListenServesMetricsAndHealth(t *testing.T) {
	t.Parallel()
	p := startServe(t, "--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1",
		"--upstream-tls", "none", "--domain", "localhost", "--allow-plaintext", "--metrics-listen", "127.0.0.1:0")
	addr := metricsAddr.FindStringSubmatch(p.wait(`msg="serving metrics and health checks"`))[1]
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
	p.signal(syscall.SIGTERM)
	<-p.ended
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("serve exited with %v after SIGTERM", err)
	}
	if _, err := client.Get("http://" + addr + "/healthz"); err == nil {
		t.Error("the metrics endpoint answers after serve exited")
	}
}
