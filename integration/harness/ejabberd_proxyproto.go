package harness

import (
	"fmt"
	"net"
)

// ProxyProtocolAddr is a c2s address of ejabberd's that requires a PROXY
// protocol header first (use_proxy_protocol: true), for xmpp2proxy's
// upstream_proxy_protocol. The listener starts with the others; wait for
// it (WaitForPort) before the first connection.
func (e *Ejabberd) ProxyProtocolAddr() string {
	return net.JoinHostPort("127.0.0.1", itoa(e.proxyPort))
}

// SessionsInfo returns what ejabberdctl user_sessions_info says of user's
// sessions: one line each, with the address ejabberd sees the client at.
func (e *Ejabberd) SessionsInfo(user string) (string, error) {
	out, err := e.ctl("user_sessions_info", user, e.domain)
	if err != nil {
		return "", fmt.Errorf("ejabberdctl user_sessions_info %s: %w\n%s", user, err, out)
	}
	return string(out), nil
}
