package proxy

import (
	"fmt"
	"net"
	"net/netip"
	"path"
	"strings"
)

// The WebSocket listener's settings (README.md, "WebSocket"):
//
//   - websocket_listen: HOST:PORT, off when empty.
//   - websocket_path: the HTTP path, /xmpp-websocket by default.
//   - websocket_tls: serve wss with cert and key. Without it the listener
//     speaks plain ws, for a web server in front that terminates TLS.
//   - websocket_origins: where a browser page may connect from. Each is a
//     path.Match pattern (case-insensitive) for the Origin's host
//     ("chat.example.org", "*.example.org"), or for scheme://host when it
//     contains "://". A page whose Origin names the same host as the
//     request's Host header is always allowed, and a client that sends no
//     Origin (not a browser) too: the library's default. Empty means only
//     that default.
//
// Which WebSocket connections count as TLS, for allow_plaintext: wss, and
// plain ws on a loopback address, which only a web server on the same host
// can reach and where it is that server's TLS the browser sees. Plain ws
// on any other address counts as plaintext, so it needs allow_plaintext
// (for a TLS-terminating web server on another host); the check below
// refuses it otherwise, rather than start a listener where nobody can log
// in. STARTTLS is never offered over WebSocket.

// validateWebSocket checks the websocket_* keys.
func (k *configChecker) validateWebSocket() {
	c := k.c
	if c.WebSocketListen == "" {
		return
	}
	if err := checkListenAddr(c.WebSocketListen); err != nil {
		k.bad("websocket_listen", "%v", err)
	} else if !c.WebSocketTLS && !c.AllowPlaintext && !isLoopbackListen(c.WebSocketListen) {
		k.bad("websocket_listen", "%q is not a loopback address, so plain WebSocket there would carry passwords in the clear: "+
			"set websocket_tls: true, or allow_plaintext: true when a TLS-terminating web server on another host is in front", c.WebSocketListen)
	}
	if err := checkWebSocketPath(c.WebSocketPath); err != nil {
		k.bad("websocket_path", "%v", err)
	}
	if c.WebSocketTLS && c.Cert == "" && !k.failed("cert") {
		k.bad("cert", "is required, with key, by %s", k.mention("websocket_tls"))
	}
	for i, p := range c.WebSocketOrigins {
		if err := checkOriginPattern(p); err != nil {
			where := c.origin(fmt.Sprintf("websocket_origins[%d]", i))
			if where == "" {
				where = c.origin("websocket_origins")
			}
			k.badAt("websocket_origins", where, "%v", err)
		}
	}
}

// checkWebSocketPath accepts an absolute URL path without characters that
// need escaping or that http.ServeMux reads as pattern syntax.
func checkWebSocketPath(p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("%q must start with / (like /xmpp-websocket)", p)
	}
	for _, r := range p {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune("{}%?#\\\"<>^`|", r) {
			return fmt.Errorf("%q has %q, which a URL path cannot hold unescaped", p, r)
		}
	}
	return nil
}

// checkOriginPattern accepts what the library matches origins with.
func checkOriginPattern(p string) error {
	if strings.TrimSpace(p) == "" {
		return fmt.Errorf("an empty pattern matches nothing")
	}
	if _, err := path.Match(strings.ToLower(p), ""); err != nil {
		return fmt.Errorf("%q is not a valid pattern (like *.example.org or https://chat.example.org)", p)
	}
	return nil
}

// isLoopbackListen reports whether a listen address is on loopback only:
// an empty host listens on every address.
func isLoopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
