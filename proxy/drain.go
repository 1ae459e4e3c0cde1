package proxy

import (
	"context"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/sm"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// shutdownDrained ends a session for a proxy shutdown. A 2.0 client with
// stream management first has what it sent acked by the upstream (the
// proxy asks with <r/> and waits, until ctx is done), then gets an
// unsolicited <a/> (XEP-0198 allows one at any time) saying how far the
// server got, then <system-shutdown/>. So <system-shutdown/> comes only
// after the client's acked stanzas are upstream, and a client that
// reconnects elsewhere resends exactly what the server never had.
func (r *relay) shutdownDrained(ctx context.Context) {
	shutdown := stream.NewError(stream.CondSystemShutdown, "the proxy is shutting down")
	v := r.s.v2
	if v == nil || r.detached() {
		r.terminate(shutdown, true)
		return
	}
	v.mu.Lock()
	live := v.sm.State() == sm.StateLive
	var wait chan struct{}
	if live && v.sm.Counts().InFlight > 0 {
		wait = make(chan struct{})
		v.drained = wait
	}
	v.mu.Unlock()
	if wait != nil {
		r.send(&r.up, requestAck)
		select {
		case <-wait:
		case <-ctx.Done():
		case <-r.s.ctx.Done():
		}
	}
	if live {
		v.mu.Lock()
		h := v.sm.Counts().Handled
		v.mu.Unlock()
		r.send(&r.client, sm.AppendAck(nil, h))
	}
	r.terminate(shutdown, true)
}
