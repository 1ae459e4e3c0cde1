package proxy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Listener names, as proxy_protocol lists them and session lines log them.
const (
	ListenerStartTLS  = "starttls"
	ListenerDirectTLS = "direct_tls"
)

// PROXY protocol versions for upstream_proxy_protocol; empty sends none.
const (
	ProxyProtocolV1 = "v1"
	ProxyProtocolV2 = "v2"
)

// validateProxyProtocol checks the PROXY protocol keys: each listener
// named exists and is on, each trusted source parses, and nothing is set
// that would have no effect (a trusted list without a listener that reads
// the header is a mistake the operator should hear about, not a no-op).
func (k *configChecker) validateProxyProtocol() {
	c := k.c
	for i, name := range c.ProxyProtocol {
		where := k.itemOrigin("proxy_protocol", i)
		switch {
		case name != ListenerStartTLS && name != ListenerDirectTLS:
			k.badAt("proxy_protocol", where, "%q is not a listener; use %s or %s", name, ListenerStartTLS, ListenerDirectTLS)
		case slices.Index(c.ProxyProtocol, name) < i:
			k.badAt("proxy_protocol", where, "%q is listed twice", name)
		case name == ListenerStartTLS && c.Listen == "" && !k.failed("listen"):
			k.badAt("proxy_protocol", where, "%q names a listener that is off (%s is empty)", name, k.mention("listen"))
		case name == ListenerDirectTLS && c.DirectTLSListen == "" && !k.failed("direct_tls_listen"):
			k.badAt("proxy_protocol", where, "%q names a listener that is off (%s is empty)", name, k.mention("direct_tls_listen"))
		}
	}
	for i, src := range c.ProxyProtocolFrom {
		if _, err := parseTrustedSource(src); err != nil {
			k.badAt("proxy_protocol_from", k.itemOrigin("proxy_protocol_from", i), "%v", err)
		}
	}
	if len(c.ProxyProtocolFrom) > 0 && len(c.ProxyProtocol) == 0 && !k.failed("proxy_protocol") {
		k.bad("proxy_protocol_from", "has no effect: no listener reads PROXY headers (set proxy_protocol)")
	}
	switch c.UpstreamProxyProtocol {
	case "", ProxyProtocolV1, ProxyProtocolV2:
	default:
		k.bad("upstream_proxy_protocol", "%q is not one of v1, v2 (or empty for none)", c.UpstreamProxyProtocol)
	}
}

// itemOrigin is where a list's item was set: its own line in a file, or
// the list's origin (a flag).
func (k *configChecker) itemOrigin(key string, i int) string {
	if where := k.c.origin(fmt.Sprintf("%s[%d]", key, i)); where != "" {
		return where
	}
	return k.c.origin(key)
}

// parseTrustedSource reads one proxy_protocol_from entry: an IP address
// or a CIDR network.
func parseTrustedSource(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a network (like 10.0.0.0/8)", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q is neither an IP address nor a network (like 10.0.0.0/8)", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// requiresProxyHeader reports whether the listener named requires a
// PROXY header.
func (c *Config) requiresProxyHeader(listener string) bool {
	return slices.Contains(c.ProxyProtocol, listener)
}
