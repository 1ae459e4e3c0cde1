package proxy

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// The checks behind Config.Check and Config.Validate: every problem of a
// configuration, each with its key and, where a file gave it, its line.

// configChecker collects the problems of one configuration.
type configChecker struct {
	c        *Config
	problems []ConfigProblem
	reported map[string]bool
}

// bad reports a problem with key, unless decoding already reported it.
func (k *configChecker) bad(key, format string, args ...any) {
	k.badAt(key, k.c.origin(key), format, args...)
}

// badAt reports a problem with key, set where (a list item's line).
func (k *configChecker) badAt(key, where, format string, args ...any) {
	if k.c.broken(key) {
		return
	}
	if k.reported == nil {
		k.reported = map[string]bool{}
	}
	k.reported[key] = true
	k.problems = append(k.problems, ConfigProblem{Key: key, Where: where, Msg: fmt.Sprintf(format, args...)})
}

// failed reports whether key is wrong already: a check that compares
// another key with it skips the comparison rather than blame the other.
func (k *configChecker) failed(key string) bool { return k.c.broken(key) || k.reported[key] }

// mention names a key and where it was set, for a message about another.
func (k *configChecker) mention(key string) string {
	if w := k.c.origin(key); w != "" {
		return key + " (" + w + ")"
	}
	return key
}

func (k *configChecker) validate() {
	c := k.c
	if c.Listen != "" {
		if err := checkListenAddr(c.Listen); err != nil {
			k.bad("listen", "%v", err)
		}
	}
	if c.DirectTLSListen != "" {
		if err := checkListenAddr(c.DirectTLSListen); err != nil {
			k.bad("direct_tls_listen", "%v", err)
		}
	}
	if c.MetricsListen != "" {
		if err := checkListenAddr(c.MetricsListen); err != nil {
			k.bad("metrics_listen", "%v", err)
		}
	}
	if c.Listen == "" && c.DirectTLSListen == "" && c.WebSocketListen == "" {
		k.bad("listen", "is empty, and so are direct_tls_listen and websocket_listen: nothing would listen")
	}
	if c.Upstream == "" {
		k.bad("upstream", "is required (the XMPP server's client address, HOST:PORT)")
	} else if err := checkUpstreamAddr(c.Upstream); err != nil {
		k.bad("upstream", "%v", err)
	}
	switch c.UpstreamTLS {
	case UpstreamTLSNone, UpstreamTLSStartTLS, UpstreamTLSDirect:
	default:
		k.bad("upstream_tls", "%q is not one of none, starttls, tls", c.UpstreamTLS)
	}
	if len(c.Domains) == 0 {
		k.bad("domains", "is required (the XMPP domains served, like [example.org])")
	}
	for i, d := range c.Domains {
		if d == "" || strings.ContainsAny(d, "@/ \t") {
			where := c.origin(fmt.Sprintf("domains[%d]", i))
			if where == "" {
				where = c.origin("domains")
			}
			k.badAt("domains", where, "%q is not a domain", d)
		}
	}
	k.validateTLS()
	k.validateWebSocket()
	if c.LogFormat != LogFormatText && c.LogFormat != LogFormatJSON {
		k.bad("log_format", "%q is not one of text, json", c.LogFormat)
	}
	k.validateLimits()
	k.validateTimeouts()
	if c.QueueSize < 1 {
		k.bad("queue_size", "%d is below 1", c.QueueSize)
	}
	k.validateProxyProtocol()
}

// validateTLS reports a missing certificate or key once, by what needs it.
func (k *configChecker) validateTLS() {
	c := k.c
	switch {
	case c.Cert != "" && c.Key == "":
		k.bad("key", "is required with %s", k.mention("cert"))
	case c.Key != "" && c.Cert == "":
		k.bad("cert", "is required with %s", k.mention("key"))
	case c.Cert == "" && c.DirectTLSListen != "":
		k.bad("cert", "is required, with key, by %s", k.mention("direct_tls_listen"))
	case c.Cert == "" && !c.AllowPlaintext && !k.failed("allow_plaintext"):
		k.bad("cert", "is required, with key; without TLS clients can log in only with allow_plaintext: true (for loopback)")
	}
}

// loadCertificate reads cert and key, naming the one that fails.
func (k *configChecker) loadCertificate() *tls.Config {
	c := k.c
	certPEM, err := os.ReadFile(c.Cert)
	if err != nil {
		k.bad("cert", "%v", err)
	}
	keyPEM, kerr := os.ReadFile(c.Key)
	if kerr != nil {
		k.bad("key", "%v", kerr)
	}
	if err != nil || kerr != nil {
		return nil
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		k.bad("cert", "does not load with %s: %v", k.mention("key"), err)
		return nil
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
}

func (k *configChecker) validateLimits() {
	l := k.c.Limits
	if l.MaxStanzaBytes < 4096 {
		k.bad("limits.max_stanza_bytes", "%d is below 4096", l.MaxStanzaBytes)
	}
	k.between("limits.max_preauth_bytes", l.MaxPreauthBytes, 1024, "limits.max_stanza_bytes", l.MaxStanzaBytes)
	if l.MaxDepth < 8 {
		k.bad("limits.max_depth", "%d is below 8", l.MaxDepth)
	}
	if l.MaxDetachedSessions < 1 {
		k.bad("limits.max_detached_sessions", "%d is below 1", l.MaxDetachedSessions)
	}
	k.between("limits.max_detached_per_account", l.MaxDetachedPerAccount, 1, "limits.max_detached_sessions", l.MaxDetachedSessions)
	if l.MaxUnacked < 16 {
		k.bad("limits.max_unacked", "%d is below 16", l.MaxUnacked)
	}
	if l.MaxCatchup < 1 {
		k.bad("limits.max_catchup", "%d is below 1", l.MaxCatchup)
	}
}

// between checks a limit that has a floor and must not exceed another
// limit, ceilKey; that one is compared only if it passed its own checks,
// so that one mistake is reported once.
func (k *configChecker) between(key string, v, floor int, ceilKey string, ceil int) {
	switch {
	case v < floor:
		k.bad(key, "%d is below %d", v, floor)
	case !k.failed(ceilKey) && v > ceil:
		k.bad(key, "%d is above %s, %d", v, k.mention(ceilKey), ceil)
	}
}

func (k *configChecker) validateTimeouts() {
	t := k.c.Timeouts
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"timeouts.handshake", t.Handshake}, {"timeouts.write", t.Write},
		{"timeouts.upstream_dial", t.UpstreamDial}, {"timeouts.close", t.Close},
		{"timeouts.resume", t.Resume}, {"timeouts.setup_step", t.SetupStep},
		{"timeouts.drain", t.Drain}, {"timeouts.proxy_header", t.ProxyHeader},
	} {
		if d.v <= 0 {
			k.bad(d.key, "must be positive, not %s", d.v)
		}
	}
	if t.Idle < 0 {
		k.bad("timeouts.idle", "must not be negative (0 disables it), not %s", t.Idle)
	}
	if t.CatchupRecheck < 0 {
		k.bad("timeouts.catchup_recheck", "must not be negative (0 disables it), not %s", t.CatchupRecheck)
	}
}

// checkListenAddr accepts what net.Listen("tcp", addr) accepts as an
// address: HOST:PORT with an optional host and a port number (or service
// name) from 0 (any free port) to 65535.
func checkListenAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not HOST:PORT (\":5222\" listens on every address)", addr)
	}
	if _, err := lookupPort(port); err != nil {
		return fmt.Errorf("%q: %v", addr, err)
	}
	return nil
}

// checkUpstreamAddr accepts HOST:PORT with a host and a port from 1 to
// 65535: what the proxy dials.
func checkUpstreamAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not HOST:PORT (like 127.0.0.1:5222)", addr)
	}
	if host == "" {
		return fmt.Errorf("%q has no host (like 127.0.0.1:5222)", addr)
	}
	p, err := lookupPort(port)
	if err == nil && p == 0 {
		err = errors.New("port 0 cannot be dialed")
	}
	if err != nil {
		return fmt.Errorf("%q: %v", addr, err)
	}
	return nil
}

// lookupPort resolves a port number or service name as net.Listen and
// net.Dial do.
func lookupPort(port string) (int, error) {
	if n, err := strconv.ParseUint(port, 10, 64); err == nil || port == "" {
		if err != nil || n > 65535 {
			return 0, fmt.Errorf("port %q is not a number from 0 to 65535", port)
		}
		return int(n), nil
	}
	p, err := net.LookupPort("tcp", port)
	if err != nil {
		return 0, fmt.Errorf("port %q is neither a number from 0 to 65535 nor a known service", port)
	}
	return p, nil
}
