package stream

import "errors"

// ErrNeedMore ends a Framer's Next when a Pending reader has handed over
// every byte of the current write: the unit it was reading continues
// with the next write.
var ErrNeedMore = errors.New("need more bytes")

// Pending is the reader under a Framer that splits writes into units (the
// WebSocket framing of RFC 7395, both ends): each write's bytes are
// placed with Set, and Next returns ErrNeedMore once they are used up.
type Pending struct{ b []byte }

// Set makes b the bytes the next reads return.
func (p *Pending) Set(b []byte) { p.b = b }

// Read hands over what is left of the current write, or ErrNeedMore.
func (p *Pending) Read(dst []byte) (int, error) {
	if len(p.b) == 0 {
		return 0, ErrNeedMore
	}
	n := copy(dst, p.b)
	p.b = p.b[n:]
	return n, nil
}

// Split gives each every complete unit of b, after what earlier writes
// left in fr (fr reads from p); a unit cut at b's end waits in fr for the
// next write.
func Split(fr *Framer, p *Pending, b []byte, each func(Unit) error) error {
	p.Set(b)
	for {
		u, err := fr.Next()
		if errors.Is(err, ErrNeedMore) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := each(u); err != nil {
			return err
		}
	}
}
