package harness

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
	"mellium.im/sasl"
)

// Login says how a Client connects and authenticates.
type Login struct {
	Addr      string
	Domain    string
	User      string
	Password  string
	Mechanism string // PLAIN, SCRAM-SHA-1 or SCRAM-SHA-256
	// TLS, when set, is used for STARTTLS, or from the start with DirectTLS.
	TLS       *tls.Config
	DirectTLS bool
	Resource  string
	// NoBind stops after authentication and the stream restart.
	NoBind bool
	// SASL2 authenticates with XEP-0388 <authenticate/> instead of <auth/>,
	// carrying Inline (for example a Bind2 <bind/>) and a user-agent.
	SASL2       bool
	Inline      string
	UserAgentID string
	// Pipeline sends <authenticate/> right after the stream header, before
	// the features arrive (after the TLS handshake with STARTTLS).
	Pipeline bool
	// WebSocketURL, when set, connects to this RFC 7395 endpoint
	// (ws://HOST:PORT/PATH) instead of Addr; leave TLS nil.
	WebSocketURL string
	// ReadBuffer, when positive, sets the socket's receive buffer
	// (SO_RCVBUF) right after connecting, so that a client that stops
	// reading closes its TCP window after little data.
	ReadBuffer int
	// Source, when set, is the local IP address to connect from (another
	// loopback address than 127.0.0.1, for a test to tell clients apart).
	Source string
}

// Client is a deliberately small classic (RFC 6120) XMPP client that works
// on raw stanzas, so tests can send exactly the bytes they mean and see
// exactly the bytes that arrive.
type Client struct {
	Conn net.Conn
	// JID is the bound full JID.
	JID string
	// Features holds the last <stream:features/> received.
	Features []byte
	// Mechanisms are the SASL mechanisms offered before authentication.
	Mechanisms []string
	// PreAuthFeatures are the features offered before authentication.
	PreAuthFeatures []byte
	// Success is the SASL2 <success/> element, as received.
	Success []byte
	// Received counts the stanzas read since SASL2 success: the h of
	// XEP-0198 for a client whose stream management began there.
	Received uint32
	// autoAck: SM began at SASL2 success, so Next answers <r/> with
	// Received, as a well-behaved client does.
	autoAck bool
	fr      *stream.Framer
}

// SASLError is a <failure/> from the server.
type SASLError struct{ Condition string }

// Error names the SASL condition.
func (e *SASLError) Error() string { return "sasl failure: " + e.Condition }

// Dial connects and logs in.
func Dial(ctx context.Context, l Login) (*Client, error) {
	var conn net.Conn
	var err error
	if l.WebSocketURL != "" {
		conn, err = DialWebSocket(ctx, l.WebSocketURL, nil)
	} else {
		d := net.Dialer{}
		if l.Source != "" {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(l.Source)}
		}
		conn, err = d.DialContext(ctx, "tcp", l.Addr)
	}
	if err != nil {
		return nil, err
	}
	if tc, ok := conn.(*net.TCPConn); ok && l.ReadBuffer > 0 {
		if err := tc.SetReadBuffer(l.ReadBuffer); err != nil {
			conn.Close()
			return nil, err
		}
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	} else {
		_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
	}
	c := &Client{Conn: conn}
	if err := c.login(l); err != nil {
		conn.Close()
		return nil, err
	}
	_ = c.Conn.SetDeadline(time.Time{})
	return c, nil
}

// NewClient wraps an established connection; call OpenStream next.
func NewClient(conn net.Conn) *Client {
	c := &Client{Conn: conn}
	c.fr = stream.NewFramer(bufio.NewReader(conn), stream.Limits{MaxBytes: 64 << 20, MaxDepth: 256})
	return c
}

func (c *Client) login(l Login) error {
	if l.DirectTLS {
		tc := tls.Client(c.Conn, l.TLS)
		if err := tc.Handshake(); err != nil {
			return err
		}
		c.Conn = tc
	}
	c.fr = stream.NewFramer(bufio.NewReader(c.Conn), stream.Limits{MaxBytes: 64 << 20, MaxDepth: 256})
	if l.Pipeline && (l.DirectTLS || l.TLS == nil) {
		return c.pipelined(l)
	}
	if err := c.OpenStream(l.Domain); err != nil {
		return err
	}
	if l.TLS != nil && !l.DirectTLS {
		if err := c.startTLS(l); errors.Is(err, errPipelined) {
			return c.pipelined(l)
		} else if err != nil {
			return err
		}
	}
	c.PreAuthFeatures = c.Features
	if l.SASL2 {
		return c.authenticate2(l)
	}
	if err := c.authenticate(l); err != nil {
		return err
	}
	if err := c.OpenStream(l.Domain); err != nil {
		return err
	}
	if l.NoBind {
		return nil
	}
	return c.bind(l.Resource)
}

// OpenStream sends a stream header and reads the reply and the features.
func (c *Client) OpenStream(domain string) error {
	hdr := "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='" + domain + "' version='1.0' xml:lang='en'>"
	if err := c.Send(hdr); err != nil {
		return err
	}
	c.fr.Reset(nil)
	u, err := c.fr.Next()
	if err != nil {
		return fmt.Errorf("stream header: %w", err)
	}
	if u.Kind != stream.UnitStreamOpen {
		return fmt.Errorf("expected stream header, got %s", u.Raw)
	}
	f, err := c.Next()
	if err != nil {
		return fmt.Errorf("features: %w", err)
	}
	if !bytes.Contains(f, []byte("features")) || bytes.Contains(f, []byte("<stream:error")) {
		return fmt.Errorf("expected features, got %s", f)
	}
	c.Features = f
	var feats struct {
		Mechanisms []string `xml:"mechanisms>mechanism"`
	}
	if xml.Unmarshal(f, &feats) == nil && len(feats.Mechanisms) > 0 {
		c.Mechanisms = feats.Mechanisms
	}
	return nil
}

func (c *Client) startTLS(l Login) error {
	if !bytes.Contains(c.Features, []byte("starttls")) {
		return errors.New("no STARTTLS offered")
	}
	if err := c.Send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"); err != nil {
		return err
	}
	b, err := c.Next()
	if err != nil {
		return err
	}
	if !bytes.Contains(b, []byte("proceed")) {
		return fmt.Errorf("starttls: %s", b)
	}
	tc := tls.Client(c.Conn, l.TLS)
	if err := tc.Handshake(); err != nil {
		return err
	}
	c.Conn = tc
	c.fr.Reset(bufio.NewReader(tc))
	if l.Pipeline && l.SASL2 {
		return errPipelined
	}
	return c.OpenStream(l.Domain)
}

// errPipelined tells login that startTLS left the new stream for the
// pipelined SASL2 path to open.
var errPipelined = errors.New("pipelined")

var mechanisms = map[string]sasl.Mechanism{
	"PLAIN": sasl.Plain, "SCRAM-SHA-1": sasl.ScramSha1, "SCRAM-SHA-256": sasl.ScramSha256,
}

func (c *Client) authenticate(l Login) error {
	mech, ok := mechanisms[l.Mechanism]
	if !ok {
		return fmt.Errorf("unknown mechanism %q", l.Mechanism)
	}
	neg := sasl.NewClient(mech, sasl.Credentials(func() ([]byte, []byte, []byte) {
		return []byte(l.User), []byte(l.Password), nil
	}))
	_, resp, err := neg.Step(nil)
	if err != nil {
		return err
	}
	if err := c.Send(fmt.Sprintf("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='%s'>%s</auth>", l.Mechanism, b64(resp))); err != nil {
		return err
	}
	for {
		b, err := c.Next()
		if err != nil {
			return err
		}
		var el struct {
			XMLName xml.Name
			Data    string                       `xml:",chardata"`
			Inner   []struct{ XMLName xml.Name } `xml:",any"`
		}
		if err := xml.Unmarshal(b, &el); err != nil {
			return err
		}
		data, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(el.Data))
		switch el.XMLName.Local {
		case "challenge":
			if _, resp, err = neg.Step(data); err != nil {
				return err
			}
			if err := c.Send("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" + b64(resp) + "</response>"); err != nil {
				return err
			}
		case "success":
			if strings.HasPrefix(l.Mechanism, "SCRAM") {
				// Verifies the server signature: proof that the
				// upstream, not the proxy, knows the password.
				if _, _, err := neg.Step(data); err != nil {
					return fmt.Errorf("server final message: %w", err)
				}
			}
			return nil
		case "failure":
			return saslFailure(el.Inner)
		default:
			return fmt.Errorf("unexpected %s during SASL", b)
		}
	}
}

// authenticate2 runs SASL2: <authenticate/> with the inline requests, the
// challenge loop, and <success/>, after which the stream goes on without a
// restart and a fresh <stream:features/> follows.
func (c *Client) authenticate2(l Login) error {
	neg, first, err := c.startSASL(l)
	if err != nil {
		return err
	}
	if err := c.Send(authenticateXML(l, first)); err != nil {
		return err
	}
	return c.finishSASL2(l, neg)
}

func (c *Client) startSASL(l Login) (*sasl.Negotiator, []byte, error) {
	mech, ok := mechanisms[l.Mechanism]
	if !ok {
		return nil, nil, fmt.Errorf("unknown mechanism %q", l.Mechanism)
	}
	neg := sasl.NewClient(mech, sasl.Credentials(func() ([]byte, []byte, []byte) {
		return []byte(l.User), []byte(l.Password), nil
	}))
	_, first, err := neg.Step(nil)
	return neg, first, err
}

func authenticateXML(l Login, first []byte) string {
	ua := ""
	if l.UserAgentID != "" {
		ua = "<user-agent id='" + l.UserAgentID + "'><software>xmpp2proxy tests</software></user-agent>"
	}
	return fmt.Sprintf("<authenticate xmlns='urn:xmpp:sasl:2' mechanism='%s'><initial-response>%s</initial-response>%s%s</authenticate>",
		l.Mechanism, base64.StdEncoding.EncodeToString(first), ua, l.Inline)
}

func (c *Client) finishSASL2(l Login, neg *sasl.Negotiator) error {
	for {
		b, err := c.Next()
		if err != nil {
			return err
		}
		var el struct {
			XMLName    xml.Name
			Data       string                       `xml:",chardata"`
			Additional string                       `xml:"additional-data"`
			AuthzID    string                       `xml:"authorization-identifier"`
			Inner      []struct{ XMLName xml.Name } `xml:",any"`
		}
		if err := xml.Unmarshal(b, &el); err != nil {
			return err
		}
		switch el.XMLName.Local {
		case "challenge":
			data, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(el.Data))
			_, resp, err := neg.Step(data)
			if err != nil {
				return err
			}
			if err := c.Send("<response xmlns='urn:xmpp:sasl:2'>" + base64.StdEncoding.EncodeToString(resp) + "</response>"); err != nil {
				return err
			}
		case "success":
			c.Success, c.JID, c.Received = b, el.AuthzID, 0
			c.autoAck = bytes.Contains(b, []byte("<enabled xmlns='urn:xmpp:sm:3'")) || bytes.Contains(b, []byte("<resumed xmlns='urn:xmpp:sm:3'"))
			if strings.HasPrefix(l.Mechanism, "SCRAM") {
				data, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(el.Additional))
				if _, _, err := neg.Step(data); err != nil {
					return fmt.Errorf("server final message in <additional-data>: %w", err)
				}
			}
			f, err := c.Next()
			if err != nil {
				return fmt.Errorf("features after success: %w", err)
			}
			c.Features = f
			return nil
		case "failure":
			return saslFailure(el.Inner)
		default:
			return fmt.Errorf("unexpected %s during SASL2", b)
		}
	}
}

// pipelined sends the stream header and <authenticate/> in one write,
// before the features arrive, as Conversations does.
func (c *Client) pipelined(l Login) error {
	neg, first, err := c.startSASL(l)
	if err != nil {
		return err
	}
	hdr := "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='" + l.Domain + "' version='1.0' xml:lang='en'>"
	if err := c.Send(hdr + authenticateXML(l, first)); err != nil {
		return err
	}
	if u, err := c.fr.Next(); err != nil || u.Kind != stream.UnitStreamOpen {
		return fmt.Errorf("stream header: %v", err)
	}
	if c.PreAuthFeatures, err = c.Next(); err != nil {
		return err
	}
	return c.finishSASL2(l, neg)
}

// saslFailure names the defined condition among a <failure/>'s children.
func saslFailure(children []struct{ XMLName xml.Name }) error {
	cond := "undefined"
	for _, in := range children {
		if in.XMLName.Local != "text" {
			cond = in.XMLName.Local
		}
	}
	return &SASLError{Condition: cond}
}

func b64(b []byte) string {
	if len(b) == 0 {
		return "="
	}
	return base64.StdEncoding.EncodeToString(b)
}

func (c *Client) bind(resource string) error {
	res := ""
	if resource != "" {
		res = "<resource>" + resource + "</resource>"
	}
	if err := c.Send("<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>" + res + "</bind></iq>"); err != nil {
		return err
	}
	b, err := c.WaitFor(15*time.Second, func(b []byte) bool { return bytes.Contains(b, []byte("bind1")) })
	if err != nil {
		return err
	}
	var iq struct {
		Type string `xml:"type,attr"`
		JID  string `xml:"bind>jid"`
	}
	if err := xml.Unmarshal(b, &iq); err != nil || iq.Type != "result" {
		return fmt.Errorf("bind failed: %s", b)
	}
	c.JID = iq.JID
	return nil
}

// Send writes raw XML.
func (c *Client) Send(s string) error {
	_, err := c.Conn.Write([]byte(s))
	return err
}

// Next returns the next top-level element, skipping whitespace. A closed
// stream is reported as io.EOF-like error containing "stream closed".
func (c *Client) Next() ([]byte, error) {
	for {
		u, err := c.fr.Next()
		if err != nil {
			return nil, err
		}
		switch u.Kind {
		case stream.UnitElement:
			if c.autoAck && bytes.HasPrefix(u.Raw, []byte("<r xmlns='urn:xmpp:sm:3'")) {
				if err := c.Send(fmt.Sprintf("<a xmlns='urn:xmpp:sm:3' h='%d'/>", c.Received)); err != nil {
					return nil, err
				}
				continue
			}
			switch {
			case bytes.HasPrefix(u.Raw, []byte("<message")), bytes.HasPrefix(u.Raw, []byte("<presence")), bytes.HasPrefix(u.Raw, []byte("<iq")):
				c.Received++
			}
			return bytes.Clone(u.Raw), nil
		case stream.UnitStreamClose:
			return nil, ErrStreamClosed
		}
	}
}

// ErrStreamClosed is returned by Next when the server closed the stream.
var ErrStreamClosed = errors.New("stream closed")

// WaitFor reads elements until match accepts one or the timeout passes.
func (c *Client) WaitFor(timeout time.Duration, match func([]byte) bool) ([]byte, error) {
	_ = c.Conn.SetReadDeadline(time.Now().Add(timeout))
	defer c.Conn.SetReadDeadline(time.Time{})
	for {
		b, err := c.Next()
		if err != nil {
			return nil, err
		}
		if match(b) {
			return b, nil
		}
	}
}

// Collect reads every element that arrives within d.
func (c *Client) Collect(d time.Duration) [][]byte {
	var out [][]byte
	_ = c.Conn.SetReadDeadline(time.Now().Add(d))
	defer c.Conn.SetReadDeadline(time.Time{})
	for {
		b, err := c.Next()
		if err != nil {
			return out
		}
		out = append(out, b)
	}
}

// Close ends the stream politely and closes the connection.
func (c *Client) Close() error {
	_ = c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	_ = c.Send("</stream:stream>")
	return c.Conn.Close()
}

// Leave ends the stream and waits, up to timeout, for the other side to
// close its own: once it returns the server has ended the session (sent
// its unavailable presence, dropped the resource), which Close does not
// wait for.
func (c *Client) Leave(timeout time.Duration) error {
	defer c.Conn.Close()
	_ = c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	if err := c.Send("</stream:stream>"); err != nil {
		return err
	}
	_ = c.Conn.SetReadDeadline(time.Now().Add(timeout))
	for {
		if _, err := c.Next(); err != nil {
			if errors.Is(err, ErrStreamClosed) || errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// Reset drops the connection abortively, as when a device loses its
// network: no </stream:stream>, no TLS close_notify, and the peer gets a
// TCP RST instead of a FIN (SO_LINGER 0).
func (c *Client) Reset() error {
	if tc := c.tcp(); tc != nil {
		_ = tc.SetLinger(0)
		return tc.Close()
	}
	return c.Conn.Close()
}

// SetReadBuffer resizes the receive buffer (SO_RCVBUF) of the socket.
func (c *Client) SetReadBuffer(n int) error {
	tc := c.tcp()
	if tc == nil {
		return fmt.Errorf("%T is not over TCP", c.Conn)
	}
	return tc.SetReadBuffer(n)
}

// tcp returns the TCP connection under TLS, or nil.
func (c *Client) tcp() *net.TCPConn {
	conn := c.Conn
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	tc, _ := conn.(*net.TCPConn)
	return tc
}

// NewID returns a random stanza id.
func NewID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
