// Package mam speaks XEP-0313 (Message Archive Management, urn:xmpp:mam:2)
// as the proxy needs it to replay a 2.0 catch-up against a 1.0 server,
// with the XEP-0059 result set management (RSM) that pages its queries.
//
// It owns:
//   - the archive query the proxy sends ([Query]) and the metadata query
//     ([MetadataQuery]);
//   - reading what comes back: a result message ([ParseResult]) and the
//     message it forwards ([ForwardedMessage]), the <fin/> ending a page
//     ([ParseFin]), and the archive's <metadata/> ([ParseMetadata]);
//   - rendering the <metadata/> the client is given ([AppendMetadata]);
//   - the key by which a message is delivered once ([DedupKey]), from the
//     XEP-0359 stanza-id the archive assigned.
//
// It is pure: no sockets, no sessions, no state. It imports only the
// standard library, proxy/ns and proxy/stream.
package mam
