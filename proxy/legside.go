package proxy

// legSide names a relay leg: the client's side of a session or the
// upstream's. It indexes what the proxy keeps per leg (relay.closedIn,
// metrics.stanzas).
type legSide uint8

const (
	// clientSide is the leg between the proxy and the client.
	clientSide legSide = iota
	// upstreamSide is the leg between the proxy and the XMPP server.
	upstreamSide
)

// String is the leg's name in logs.
func (s legSide) String() string {
	if s == clientSide {
		return "client"
	}
	return "upstream"
}
