// Package ns is the one set of XML namespace names the module compares
// with and writes: those of RFC 6120 (XMPP core), RFC 7395 (XMPP over
// WebSocket), the XEPs the proxy speaks or looks into, and the 2.0
// contract's own. It imports nothing, so every package may import it
// (proxy, proxy/stream, proxy/sm, rewrite, carbonsim).
//
// Go struct tags cannot refer to constants, so the tags of the types that
// encoding/xml decodes spell their namespaces out; everything else uses
// these names.
package ns

// RFC 6120 (XMPP core) and RFC 7395 (WebSocket framing).
const (
	// Client is the default namespace of a client-to-server stream
	// (RFC 6120 section 4.8.3): jabber:client.
	Client = "jabber:client"
	// Stream is the namespace of <stream:stream/> and <stream:features/>
	// (RFC 6120 section 4.8.1).
	Stream = "http://etherx.jabber.org/streams"
	// Streams is the namespace of the stream error conditions (RFC 6120
	// section 4.9.3).
	Streams = "urn:ietf:params:xml:ns:xmpp-streams"
	// Stanzas is the namespace of the stanza error conditions (RFC 6120
	// section 8.3.3).
	Stanzas = "urn:ietf:params:xml:ns:xmpp-stanzas"
	// TLS is STARTTLS negotiation (RFC 6120 section 5).
	TLS = "urn:ietf:params:xml:ns:xmpp-tls"
	// SASL is SASL negotiation (RFC 6120 section 6).
	SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
	// Bind is resource binding (RFC 6120 section 7).
	Bind = "urn:ietf:params:xml:ns:xmpp-bind"
	// Framing is the namespace of RFC 7395's <open/> and <close/>.
	Framing = "urn:ietf:params:xml:ns:xmpp-framing"
)

// XEPs.
const (
	// Data is data forms (XEP-0004).
	Data = "jabber:x:data"
	// DiscoInfo is service discovery's info query (XEP-0030).
	DiscoInfo = "http://jabber.org/protocol/disco#info"
	// MUC is multi-user chat, the join request (XEP-0045).
	MUC = "http://jabber.org/protocol/muc"
	// MUCUser is multi-user chat, what a room says of an occupant
	// (XEP-0045).
	MUCUser = "http://jabber.org/protocol/muc#user"
	// RSM is result set management, archive paging (XEP-0059).
	RSM = "http://jabber.org/protocol/rsm"
	// OOB is an out-of-band data link (XEP-0066).
	OOB = "jabber:x:oob"
	// SM is stream management, version 3 (XEP-0198).
	SM = "urn:xmpp:sm:3"
	// Delay is delayed delivery (XEP-0203).
	Delay = "urn:xmpp:delay"
	// Conference is a direct MUC invitation (XEP-0249).
	Conference = "jabber:x:conference"
	// Carbons is message carbons (XEP-0280).
	Carbons = "urn:xmpp:carbons:2"
	// Forward is stanza forwarding (XEP-0297).
	Forward = "urn:xmpp:forward:0"
	// Correct is last message correction (XEP-0308).
	Correct = "urn:xmpp:message-correct:0"
	// MAM is the message archive, version 2 (XEP-0313).
	MAM = "urn:xmpp:mam:2"
	// Hints is message processing hints (XEP-0334).
	Hints = "urn:xmpp:hints"
	// CSI is client state indication (XEP-0352).
	CSI = "urn:xmpp:csi:0"
	// StanzaID is unique and stable stanza ids (XEP-0359).
	StanzaID = "urn:xmpp:sid:0"
	// SASL2 is extensible SASL profile (XEP-0388).
	SASL2 = "urn:xmpp:sasl:2"
	// Bind2 is Bind 2 (XEP-0386).
	Bind2 = "urn:xmpp:bind:0"
	// Retract is message retraction (XEP-0424).
	Retract = "urn:xmpp:message-retract:1"
	// Reactions is message reactions (XEP-0444).
	Reactions = "urn:xmpp:reactions:0"
	// IAP is Initial Authentication Pipelining (XEP-0509).
	IAP = "urn:xmpp:iap:0"
)

// XMPP2 is the 2.0 contract's own namespace: <sync/>, <join/>,
// <xmpp-2/> and <xmpp-1/>.
const XMPP2 = "urn:xmpp:xmpp2:0"
