// Package sasl2 speaks XEP-0388 (Extensible SASL Profile, urn:xmpp:sasl:2)
// as the proxy's 2.0 front end: the client authenticates with SASL2 and
// the proxy relays the exchange to the 1.0 server in RFC 6120 section 6
// framing (urn:ietf:params:xml:ns:xmpp-sasl), translating each element
// both ways.
//
// It owns:
//   - the <authenticate/> a client sends ([Authenticate], decoded by
//     [ParseAuthenticate]) with its inline requests: the user agent, the
//     Bind2 request (package bind2) and an XEP-0198 resumption;
//   - the translation to RFC 6120 ([Authenticate.SASL1Auth],
//     [SASL1Response]) and back ([Wrap], [FailureFromSASL1]);
//   - what the proxy renders itself: the SASL2 feature ([Advertisement]),
//     a failure ([Failure]) and the start of a <success/>
//     ([AppendSuccessStart]).
//
// Replaying the bind and composing the rest of <success/> need the
// session, and stay in package proxy. This package is pure: no sockets,
// no sessions, no state. It imports only the standard library,
// proxy/bind2, proxy/ns and proxy/stream.
package sasl2
