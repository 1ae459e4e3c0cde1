package rewrite

// HasPrivate reports whether a message has a direct
// <private xmlns='urn:xmpp:carbons:2'/> child. Nested ones (inside a
// carbon's <forwarded/>) and non-message stanzas do not count. The error
// wraps ErrNotWellFormed or ErrRestrictedXML.
func HasPrivate(stanza []byte) (bool, error) {
	s, err := parse(stanza)
	if err != nil {
		return false, err
	}
	return s.message && s.hasAny(bit(kPrivate)), nil
}

// WithPrivate adds <private xmlns='urn:xmpp:carbons:2'/> as the last child
// of a message that has no direct one. It puts back the marker that a 1.0
// server took off a message on its way (Prosody does), so that the
// entering rules see what the sender wrote. A message that has one, and any
// other stanza, is returned as is. The error wraps ErrNotWellFormed or
// ErrRestrictedXML.
func WithPrivate(stanza []byte) ([]byte, error) {
	s, err := parse(stanza)
	if err != nil {
		return nil, err
	}
	if !s.message || s.hasAny(bit(kPrivate)) {
		return stanza, nil
	}
	var buf [1]string
	buf[0] = elPrivate
	e := edit{appends: buf[:]}
	return e.apply(&s, stanza), nil
}
