// Package stream is the byte-level XML stream layer of the proxy: what
// RFC 6120 section 4 (XML streams) and section 11 (XML usage
// restrictions) ask of a server before any XML decoder sees the bytes.
//
// It owns:
//   - the Framer, which splits a stream into top-level units (the stream
//     header, stanzas and nonzas, whitespace keepalives, the stream close)
//     under size and depth Limits, and refuses comments, processing
//     instructions, DTDs, unbalanced tags and invalid UTF-8 (RFC 6120
//     sections 11.1, 11.3 and 11.6);
//   - stream errors (Error and the Cond conditions of RFC 6120 section
//     4.9.3) and the stream header (ParseHeader, AppendHeader, section 4.7);
//   - reading a framed unit without decoding it: its name and namespace
//     (ElementName), its attributes (AttrBytes and friends, through
//     package rewrite's start-tag scanner), a direct child (ChildElement),
//     and escaping what the proxy writes (AppendEscaped);
//   - what lets an idle leg hold no memory: the pooled read buffers, the
//     RecordConn that hands crypto/tls one record at a time, and Parking,
//     which waits on the socket itself; and the upstream socket's quick
//     ACK (WithQuickAck).
//
// It knows nothing of sessions, accounts or SASL: it imports only the
// standard library, proxy/ns and rewrite, and package proxy imports it.
package stream
