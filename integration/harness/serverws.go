package harness

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
)

// prosodyWebSocket is appended to a harness Prosody's configuration to
// turn on its own RFC 7395 listener. `Host "*"` returns to the global
// section, so the HTTP options are global (where Prosody reads them); the
// module is then added to the one virtual host.
const prosodyWebSocket = `
-- Added by harness.EnableProsodyWebSocket: Prosody's own RFC 7395 listener,
-- the direct row the browser test compares the proxy's WebSocket with.
Host "*"
http_ports = { %[1]d }
http_interfaces = { "127.0.0.1" }
https_ports = { }
http_default_host = %[2]q
-- Plain ws:// on loopback counts as secure, like a TLS-terminating web server.
consider_websocket_secure = true
-- The test page is served from another loopback port, so another origin.
cross_domain_websocket = true
-- Host-level modules_enabled adds to the global list.
VirtualHost %[2]q
modules_enabled = { "websocket" }
`

// EnableProsodyWebSocket turns on Prosody's built-in mod_websocket on a
// free loopback HTTP port and restarts p on the amended configuration
// (accounts and data survive). It returns the ws:// URL of the endpoint.
// It is a transport for tests that want a WebSocket client to reach the
// server without the proxy; the demo's Prosody never has it.
func EnableProsodyWebSocket(ctx context.Context, p *Prosody) (string, error) {
	port, err := FreePort()
	if err != nil {
		return "", err
	}
	f, err := os.OpenFile(filepath.Join(p.Dir(), "prosody.cfg.lua"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return "", err
	}
	_, err = fmt.Fprintf(f, prosodyWebSocket, port, p.Domain())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	if err := p.Restart(ctx); err != nil {
		return "", fmt.Errorf("restart prosody with mod_websocket: %w\n%s", err, p.Log())
	}
	url := fmt.Sprintf("ws://127.0.0.1:%d/xmpp-websocket", port)
	if err := WaitForPort(ctx, fmt.Sprintf("127.0.0.1:%d", port), nil); err != nil {
		return "", err
	}
	return url, nil
}

// WebSocketURL returns the ws:// URL of ejabberd's own RFC 7395 endpoint
// (ejabberd_http_ws on loopback), for tests that want a WebSocket client
// to reach ejabberd without the proxy.
func (e *Ejabberd) WebSocketURL() string {
	return "ws://" + net.JoinHostPort("127.0.0.1", itoa(e.wsPort)) + "/xmpp-websocket"
}
