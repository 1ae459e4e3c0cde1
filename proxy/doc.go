// Package proxy is the XMPP proxy itself: it listens for clients (TCP with
// STARTTLS, direct TLS, WebSocket per RFC 7395), speaks the client side of
// RFC 6120 up to authentication, relays classic SASL to an unmodified XMPP
// server, and then relays both streams. For a client that speaks SASL2
// (XEP-0388) and Bind2 (XEP-0386) it replays the session upstream as
// classic SASL, resource binding, carbons (XEP-0280), stream management
// (XEP-0198), the archive (XEP-0313) and MUC joins (XEP-0045), and holds
// the account's sessions together as the 2.0 contract (docs/protocol.md)
// says.
//
// The byte-level stream layer is package proxy/stream, stream management
// on a 2.0 client leg is proxy/sm, and namespace names are proxy/ns;
// docs/design.md has the whole package map.
package proxy
