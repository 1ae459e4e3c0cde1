package proxy

import "testing"

func TestAQueueHoldsAChannelOnlyWhileItHasSomethingToWrite(t *testing.T) {
	q := &queue{size: 4}
	if q.current() != nil {
		t.Fatal("a new queue already has a channel")
	}
	ch := q.acquire()
	ch <- []byte("<presence/>")
	q.release()
	if q.retire() {
		t.Fatal("retire dropped a queue with an item in it")
	}
	<-ch
	second := q.acquire() // a send under way
	if q.retire() {
		t.Fatal("retire dropped a queue while a send was under way")
	}
	q.release()
	if second != ch {
		t.Fatal("a send while the channel exists got another channel")
	}
	if !q.retire() || q.current() != nil || q.len() != 0 {
		t.Fatal("an empty queue with no send under way kept its channel")
	}
	if q.acquire() == nil {
		t.Fatal("a send after retire got no channel")
	}
	q.release()
}
