// Package muc speaks the part of XEP-0045 (Multi-User Chat) a Bind2
// replay needs: the join presence the proxy sends for each room a 2.0
// client names in its bind request, recognising the occupant's own
// presence that completes the join, and reporting the outcome to the
// client in the contract's <joined/> and <join-failed/> inside Bind2's
// <bound/>.
//
// It is pure: no sockets, no sessions, no state. It imports only the
// standard library, proxy/ns and proxy/stream.
package muc
