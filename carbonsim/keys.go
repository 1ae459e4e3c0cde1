package carbonsim

import "hash/maphash"

// keys are the identities one copy of a message carries, each hashed with
// the account's secret seed (0 when absent):
//
//   - sid: the stanza-id (XEP-0359) assigned by the archive that holds the
//     message (the account, or the room for groupchat), or a MAM result's
//     archive id, scoped by that archive;
//   - oid: the origin-id, scoped by the sender's bare JID;
//   - id: the id attribute, scoped by the sender's full JID.
//
// Scoping the sender-chosen ids by sender means a stranger cannot make the
// proxy drop someone else's message by reusing its ids.
type keys struct{ sid, oid, id uint64 }

func (k keys) empty() bool { return k == keys{} }

// same reports whether two copies are the same message, judged by the
// strongest kind of key both carry: two copies whose stanza-ids differ are
// different messages even if a sender reused an id attribute.
func (k keys) same(o keys) bool {
	switch {
	case k.sid != 0 && o.sid != 0:
		return k.sid == o.sid
	case k.oid != 0 && o.oid != 0:
		return k.oid == o.oid
	case k.id != 0 && o.id != 0:
		return k.id == o.id
	}
	return false
}

// merge fills the kinds of key k lacks from o, once o is known to be the
// same message.
func (k *keys) merge(o keys) {
	if k.sid == 0 {
		k.sid = o.sid
	}
	if k.oid == 0 {
		k.oid = o.oid
	}
	if k.id == 0 {
		k.id = o.id
	}
}

const (
	kindSID byte = 's'
	kindOID byte = 'o'
	kindID  byte = 'i'
)

// hashKey hashes one scoped id. JIDs and XML attribute values never
// contain NUL, so the encoding is unambiguous.
func hashKey(seed maphash.Seed, kind byte, scope, id string) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	_ = h.WriteByte(kind)
	_, _ = h.WriteString(scope)
	_ = h.WriteByte(0)
	_, _ = h.WriteString(id)
	if v := h.Sum64(); v != 0 {
		return v
	}
	return 1 // 0 means "absent"
}

// keySet remembers at most max messages, least recently used first out.
// Slots live in one slice, linked into the recency list by index, and one
// map indexes every present key of every slot: a steady state allocates
// nothing but map growth.
type keySet struct {
	max   int
	slots []slot
	head  int32 // most recently used, -1 when empty
	tail  int32 // least recently used, -1 when empty
	index map[uint64]int32
}

type slot struct {
	k          keys
	prev, next int32
	ref        int32 // the owner's handle for the slot (held item index)
}

func newKeySet(max int) keySet {
	return keySet{max: max, head: -1, tail: -1, index: make(map[uint64]int32)}
}

// find returns the slot holding the same message as k, if remembered.
func (s *keySet) find(k keys) (int32, bool) {
	for _, h := range [...]uint64{k.sid, k.oid, k.id} {
		if h == 0 {
			continue
		}
		if i, ok := s.index[h]; ok && s.slots[i].k.same(k) {
			return i, true
		}
	}
	return -1, false
}

// seen reports whether k is remembered; a hit learns k's other keys and
// becomes the most recently used.
func (s *keySet) seen(k keys) bool {
	i, ok := s.find(k)
	if ok {
		s.learn(i, k)
		s.touch(i)
	}
	return ok
}

// add remembers k as a new message, evicting the least recently used one
// when full, and returns its slot.
func (s *keySet) add(k keys, ref int32) int32 {
	var i int32
	if len(s.slots) < s.max {
		i = int32(len(s.slots))
		s.slots = append(s.slots, slot{prev: -1, next: -1})
	} else {
		i = s.tail
		s.unlink(i)
		s.unindex(i)
	}
	s.slots[i].k = keys{}
	s.slots[i].ref = ref
	s.learn(i, k)
	s.pushFront(i)
	return i
}

// learn adds k's keys to slot i and to the index.
func (s *keySet) learn(i int32, k keys) {
	sl := &s.slots[i]
	sl.k.merge(k)
	for _, h := range [...]uint64{k.sid, k.oid, k.id} {
		if h != 0 && (h == sl.k.sid || h == sl.k.oid || h == sl.k.id) {
			s.index[h] = i
		}
	}
}

func (s *keySet) unindex(i int32) {
	k := s.slots[i].k
	for _, h := range [...]uint64{k.sid, k.oid, k.id} {
		if j, ok := s.index[h]; ok && j == i {
			delete(s.index, h)
		}
	}
}

func (s *keySet) touch(i int32) {
	if s.head == i {
		return
	}
	s.unlink(i)
	s.pushFront(i)
}

func (s *keySet) unlink(i int32) {
	sl := &s.slots[i]
	if sl.prev >= 0 {
		s.slots[sl.prev].next = sl.next
	} else {
		s.head = sl.next
	}
	if sl.next >= 0 {
		s.slots[sl.next].prev = sl.prev
	} else {
		s.tail = sl.prev
	}
	sl.prev, sl.next = -1, -1
}

func (s *keySet) pushFront(i int32) {
	sl := &s.slots[i]
	sl.prev, sl.next = -1, s.head
	if s.head >= 0 {
		s.slots[s.head].prev = i
	}
	s.head = i
	if s.tail < 0 {
		s.tail = i
	}
}

func (s *keySet) len() int { return len(s.slots) }

func (s *keySet) reset() {
	s.slots = s.slots[:0]
	s.head, s.tail = -1, -1
	clear(s.index)
}
