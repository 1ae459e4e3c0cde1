// Package carbonsim decides what each XMPP 2.0 session of an account sees
// of the messages its 1.0 upstream sessions receive: the delivery rules of
// the contract (docs/protocol.md), section 4 ("Catch-up order
// (exactly once)"), section 5 (routing rules seen by a 2.0 client) and
// section 6 (migration rules, for the scope of a message).
//
// Each 2.0 session has its own upstream session, bound to its own resource,
// with Message Carbons (XEP-0280) enabled. The 1.0 server delivers a message
// for the account's bare JID to some resources only and carbon-copies it to
// others; the same message may also come back from offline storage, from a
// MAM catch-up (XEP-0313) or as an XEP-0198 retransmission. An [Account] is
// fed every message as it arrived on one upstream leg ([Account.Observe])
// and answers with the stanzas to write to each session ([Delivery]), so
// that every online session gets every message exactly once:
//
//   - a received carbon is unwrapped into the forwarded message
//     (XEP-0297); 2.0 clients never see a <received/> wrapper;
//   - a sent carbon is kept as a <sent/> carbon;
//   - no message goes back to the session that sent it (its full JID is
//     the message's from), except in that session's own catch-up;
//   - carbons of groupchat and headline messages, and carbons of messages
//     that belong to one session, are dropped;
//   - a message of account scope that reaches any leg reaches every online
//     session, once;
//   - a MAM catch-up result is always delivered, to the session whose
//     catch-up it is; live traffic for a session that is still catching up
//     is held until [Account.Synced], minus what the catch-up delivered;
//   - duplicates are recognised by the stanza-id the archive assigned
//     (XEP-0359), else the origin-id, else the id attribute scoped by the
//     sender.
//
// # Memory
//
// Each session remembers the last memory messages it was given (see
// [NewAccount]), least recently seen first out. A copy is recognised as a
// duplicate exactly when fewer than memory other messages reached that
// session since it last met this one (delivered, or recognised as a
// duplicate); a later copy is delivered again. With the default of 1024,
// a copy is missed only when more than 1024 other messages of the account
// reached the session in between, far more than an XEP-0198
// retransmission (at most the upstream's unacknowledged queue, 500
// stanzas on Prosody) or a carbon (milliseconds behind the direct copy)
// can lag. Keys are kept as 64-bit hashes under a per-account random seed:
// about 112 bytes per remembered message, so about 112 KiB for a busy
// session at the default, allocated as messages arrive. Two different
// messages are mistaken for one with probability about 2^-64 per lookup
// and remembered key, and a sender cannot aim a collision at someone
// else's message without the seed.
//
// A session that is catching up holds at most memory live stanzas; one
// more ends it with a [HoldOverflowError].
//
// Feed Observe the stanza exactly as the upstream sent it, and apply the
// migration rewrite (package rewrite) to each delivery afterwards: the
// scope rules here read the 1.0 routing modifiers that the rewrite strips.
//
// The package is a pure state machine: no network, no goroutines, no
// clock, no locking. One Account serves one account and is not safe for
// concurrent use.
package carbonsim
