// Package bind2 speaks XEP-0386 (Bind 2, urn:xmpp:bind:0) as the proxy's
// 2.0 front end receives it inline in a SASL2 <authenticate/>, with the
// contract's extensions (urn:xmpp:xmpp2:0 <sync/> and <join/>) and the
// XEP-0198 stream management requests that may come inline with it.
//
// It owns:
//   - the wire types of a bind request ([Request] and its parts), which
//     package sasl2 decodes as part of <authenticate/>;
//   - the resource a Bind2 session gets ([DeriveResource]);
//   - the inline initial presence as the proxy replays it upstream
//     ([AppendPresence]).
//
// Replaying a request against the 1.0 server and rendering <bound/>
// need the session, and stay in package proxy. This package is pure: no
// sockets, no sessions, no state. It imports only the standard library
// and proxy/stream.
package bind2
