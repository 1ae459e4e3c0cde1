// Package rewrite implements the migration rules of the XMPP 2.0 contract
// (docs/protocol.md, section 6 "Migration rules", with the routing
// table of section 5): what happens to a message when it leaves the 2.0 realm
// (a 2.0 client's message going to the unmodified 1.0 server) and when it
// enters it (a message from the server to a 2.0 session).
//
// The functions are pure: stanza bytes in, stanza bytes out. They never
// touch a connection, and they know nothing about sessions; Entering only
// says, through a Route, whether a message is for the session it was
// delivered to or for the whole account, and whether it belongs in the
// account's history.
//
// # Leaving the 2.0 realm
//
//   - to a full JID: add <private xmlns='urn:xmpp:carbons:2'/>,
//     <no-copy xmlns='urn:xmpp:hints'/> and <no-store xmlns='urn:xmpp:hints'/>,
//     each unless present;
//   - every message: add <xmpp-2 xmlns='urn:xmpp:xmpp2:0'/> unless present.
//
// # Entering the 2.0 realm
//
//   - carries <xmpp-2/>: 2.0 semantics; the 1.0 routing modifiers
//     (<private xmlns='urn:xmpp:carbons:2'/>, <no-copy/>, <no-store/> and
//     <no-permanent-store/> in urn:xmpp:hints) are stripped, and the address
//     decides: bare JID to the account, full JID to this session (transient);
//   - to the bare JID: every 2.0 session of the account;
//   - to a full JID with <private/> or <no-copy/>: this session only;
//   - to a full JID without them: chat is rerouted to the bare JID; normal
//     is too when it has archivable content, and is otherwise transient and
//     for this session only; groupchat and headline are transient and for
//     this session only; a MUC private message is for this session only;
//   - a message without <xmpp-2/> gets <xmpp-1 xmlns='urn:xmpp:xmpp2:0'/>.
//
// # Decisions where the contract is silent
//
// Rerouting rewrites the address. A full-JID chat that is rerouted to the
// bare JID arrives at every 2.0 session with to='account@domain': each session
// sees the same stanza, and none sees a 'to' naming a sibling session. This
// is the opposite of resource locking, which the contract forbids (the proxy
// never turns a bare-JID 'to' into a full JID).
//
// Archivable content, which makes a normal message to a full JID go to the
// whole account, is a direct child that is one of: <body/> or <subject/>
// (jabber:client), <store xmlns='urn:xmpp:hints'/>, <reactions
// xmlns='urn:xmpp:reactions:0'/>, <x xmlns='jabber:x:oob'/>, <replace
// xmlns='urn:xmpp:message-correct:0'/>, <retract
// xmlns='urn:xmpp:message-retract:1'/>, <x xmlns='jabber:x:conference'/>.
//
// A message of type error is for this session only and transient, whatever
// its address: it answers something one session sent. The marking rules
// apply to it as to any message, so a bounce of a 2.0 client's own message
// loses the modifiers that Leaving added.
//
// A message without 'to' (or with an empty one) comes from the server to
// this stream (RFC 6120 8.1.1.1): this session only, transient.
//
// A missing or unknown type is normal (RFC 6121 5.2.2).
//
// Transient means "never part of a catch-up": every session-only message,
// every headline (the upstream does not archive them), and a 1.0 message
// carrying <no-store/> or <no-permanent-store/>, even when it goes to the
// whole account. For a message carrying <xmpp-2/> those hints are stripped
// and do not count: only its address decides.
//
// Among the rules for a full JID, <private/> and <no-copy/> are checked
// before the MUC private message rule, and both before the type. A MUC
// message is recognised by any direct <x xmlns='http://jabber.org/protocol/muc#user'/>
// child.
//
// Leaving applies its rules to every message type, type error included,
// and treats a message without 'to' as addressed to the sender's bare JID
// (RFC 6120 10.3).
//
// On entering, a message that carries both <xmpp-2/> and <xmpp-1/> loses the
// <xmpp-1/>; a message that already carries <xmpp-1/> does not get a second.
// Hence both functions are idempotent.
//
// # Restoring <private/>
//
// HasPrivate and WithPrivate look for and put back a direct
// <private xmlns='urn:xmpp:carbons:2'/>: Prosody takes it off a message before
// delivery, and the proxy, which saw the sender write it, restores it before
// Entering decides the route.
//
// # Bytes
//
// Only direct children of <message> are looked at, added or removed, never
// nested ones (a <no-copy/> inside a carbon's <forwarded/> stays). Namespaces
// are resolved for those children with the declarations on the child and on
// <message> itself, so <h:no-copy xmlns:h='urn:xmpp:hints'/> is a modifier.
// Added elements are appended as the last children, in the single-quoted
// form above; a self-closing <message/> is opened and closed for them.
// Removed elements leave their surrounding whitespace. Everything else
// (attribute order and quotes, child order, whitespace, references) is
// copied unchanged, and a stanza that needs no change is returned as is.
//
// A hand-written scanner reads the XML that stanzas are made of in one pass
// and without allocating, so a rewrite costs one allocation (the result) and
// none when nothing changes. Whatever the scanner is not sure about (CDATA,
// non-ASCII element names, a reference in an address, and every error) is
// decided by encoding/xml instead; a fuzz test holds the two to the same
// answers.
//
// Input must be exactly one element, optionally surrounded by whitespace.
// Anything else is an error wrapping ErrNotWellFormed; a comment, processing
// instruction or DTD is an error wrapping ErrRestrictedXML (RFC 6120 11.1).
// A repeated attribute is not well-formed.
//
// # Reading start tags
//
// Tag, Attr, AttrEqual, AttrEqualFold, TagEnd, Unescape, ValueEqual and
// ValueEqualFold are the module's one reader of attributes: the scanner
// above walks tags with it, and the proxy takes every routing decision that
// depends on an attribute (to, id, type, from, xmlns, h) through it. It
// follows the start-tag grammar, so a quoted value is data whatever it
// holds, and matches qualified names exactly. Values come out raw, as
// subslices of the input, and references are resolved as encoding/xml
// resolves them, allocating only when there is one; FuzzAttr holds it to
// encoding/xml.
package rewrite
