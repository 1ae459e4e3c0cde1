package sm

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// A step is one call on a Machine and the rendering of its result that the
// rule expects ("" to not check).
type step struct {
	op     string
	raw    string
	n      uint32
	b1, b2 bool
	want   string
}

func (s step) is(want string) step { s.want = want; return s }

func enable(wantResume, canHold bool) step { return step{op: "enable", b1: wantResume, b2: canHold} }
func queue(raw string) step                { return step{op: "queue", raw: raw} }
func relay(raw string, up uint32) step     { return step{op: "relay", raw: raw, n: up} }
func fromUp() step                         { return step{op: "fromUp"} }
func upHandled(n uint32) step              { return step{op: "upHandled", n: n} }
func ack(h uint32) step                    { return step{op: "ack", n: h} }
func fwd() step                            { return step{op: "stanza", b1: true} }
func answered() step                       { return step{op: "stanza"} }
func req() step                            { return step{op: "r"} }
func upAck(h uint32) step                  { return step{op: "upAck", n: h} }
func upReq() step                          { return step{op: "upR"} }
func toUp() step                           { return step{op: "toUp"} }
func detach() step                         { return step{op: "detach"} }
func resume(h uint32) step                 { return step{op: "resume", n: h} }
func state() step                          { return step{op: "state"} }
func kept() step                           { return step{op: "kept"} }

// times repeats a step without checking its result.
func times(n int, s step) []step {
	out := make([]step, n)
	for i := range out {
		out[i] = s
		out[i].want = ""
	}
	return out
}

func steps(parts ...any) []step {
	var out []step
	for _, p := range parts {
		switch p := p.(type) {
		case step:
			out = append(out, p)
		case []step:
			out = append(out, p...)
		}
	}
	return out
}

type rule struct {
	name  string
	cfg   Config
	steps []step
}

func runRules(t *testing.T, rules []rule) {
	t.Helper()
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			m := New(r.cfg)
			for i, s := range r.steps {
				if got := do(m, s); s.want != "" && got != s.want {
					t.Fatalf("step %d (%s %d): got %q, want %q", i, s.op, s.n, got, s.want)
				}
			}
		})
	}
}

func do(m *Machine, s step) string {
	switch s.op {
	case "enable":
		resume, err := m.Enable(s.b1, s.b2)
		if err != nil {
			return render(err)
		}
		if !resume {
			return "no resume"
		}
		return "resume"
	case "queue", "relay":
		var q Queued
		var err error
		if s.op == "queue" {
			q, err = m.Queue([]byte(s.raw))
		} else {
			q, err = m.QueueFromUpstream([]byte(s.raw), s.n)
		}
		switch {
		case err != nil:
			return render(err)
		case m.State() == StateOff:
			return fmt.Sprintf("write, uncounted (#%d)", q.Seq)
		case !q.Write:
			return fmt.Sprintf("#%d keep", q.Seq)
		case q.AskClient:
			return fmt.Sprintf("#%d write, r", q.Seq)
		}
		return fmt.Sprintf("#%d write", q.Seq)
	case "fromUp":
		return fmt.Sprintf("up#%d", m.FromUpstream())
	case "toUp":
		return fmt.Sprintf("up#%d", m.ToUpstream())
	case "upHandled":
		return render(m.UpstreamHandled(s.n))
	case "ack":
		a, err := m.ClientAck(s.n)
		if err != nil {
			return render(err)
		}
		return renderAck(a, " up")
	case "stanza":
		in, err := m.ClientStanza(s.b1)
		switch {
		case err != nil:
			return render(err)
		case in.AskUpstream:
			return "r up"
		}
		return "-"
	case "r":
		r, err := m.ClientRequest()
		switch {
		case err != nil:
			return render(err)
		case r.Client.Send:
			return renderAck(r.Client, "")
		case r.AskUpstream:
			return "wait, r up"
		}
		return "wait"
	case "upAck":
		r, err := m.UpstreamAck(s.n)
		switch {
		case err != nil:
			return render(err)
		case r.Resumed != nil:
			return renderAck(r.Client, "") + "; " + renderResumption(*r.Resumed)
		}
		return renderAck(r.Client, "")
	case "upR":
		return fmt.Sprintf("a h=%d", m.AnswerUpstream())
	case "detach":
		ask, err := m.Detach()
		switch {
		case err != nil:
			return render(err)
		case ask:
			return "detached, r up"
		}
		return "detached"
	case "resume":
		r, err := m.Resume(s.n)
		if err != nil {
			return render(err)
		}
		return renderResumption(r)
	case "state":
		return m.State().String()
	case "kept":
		seqs := []string{}
		for _, st := range m.unacked {
			seqs = append(seqs, fmt.Sprint(st.Seq))
		}
		return "[" + strings.Join(seqs, " ") + "]"
	}
	panic("unknown op " + s.op)
}

func renderAck(a Ack, suffix string) string {
	if !a.Send {
		return "-"
	}
	return fmt.Sprintf("a h=%d%s", a.H, suffix)
}

func renderResumption(r Resumption) string {
	if !r.Ready {
		s := "waiting"
		if r.AskUpstream {
			s += ", r up"
		}
		return s
	}
	var seqs []string
	for _, st := range r.Replay {
		seqs = append(seqs, fmt.Sprintf("%d:%s", st.Seq, st.Raw))
	}
	s := fmt.Sprintf("resumed h=%d replay=[%s]", r.H, strings.Join(seqs, " "))
	if r.AskClient {
		s += ", r"
	}
	if r.Upstream.Send {
		s += fmt.Sprintf(", up a h=%d", r.Upstream.H)
	}
	return s
}

func render(err error) string {
	var ae *AckError
	var oe *OverflowError
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &ae):
		who := ""
		if ae.Upstream {
			who = "upstream "
		}
		if ae.Backwards() {
			return fmt.Sprintf("%sbackwards h=%d after %d", who, ae.H, ae.Acked)
		}
		return fmt.Sprintf("%shandled-count-too-high h=%d send-count=%d", who, ae.H, ae.Sent)
	case errors.As(err, &oe):
		return "overflow: " + oe.List
	}
	return strings.TrimPrefix(err.Error(), "sm: ")
}
