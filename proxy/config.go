package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
)

// Upstream TLS modes.
const (
	UpstreamTLSNone     = "none"     // plaintext, for a server on loopback
	UpstreamTLSStartTLS = "starttls" // RFC 6120 STARTTLS
	UpstreamTLSDirect   = "tls"      // XEP-0368 direct TLS
)

// Config is everything the proxy needs to run. The YAML keys are the flag
// names with '-' written as '_'.
type Config struct {
	// Listen is the client-facing address offering STARTTLS.
	Listen string `yaml:"listen"`
	// DirectTLSListen is the XEP-0368 direct TLS address; empty turns it off.
	DirectTLSListen string `yaml:"direct_tls_listen"`
	// Upstream is the XMPP 1.0 server's client port, HOST:PORT.
	Upstream string `yaml:"upstream"`
	// UpstreamTLS is one of none, starttls or tls.
	UpstreamTLS string `yaml:"upstream_tls"`
	// UpstreamInsecure skips verification of the upstream certificate.
	UpstreamInsecure bool `yaml:"upstream_insecure"`
	// Domains are the XMPP domains served; a stream to any other is refused.
	Domains []string `yaml:"domains"`
	// Cert and Key are PEM files for the client-facing TLS.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// AllowPlaintext lets clients authenticate without TLS.
	AllowPlaintext bool `yaml:"allow_plaintext"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `yaml:"log_level"`
	// Secret keys the hash in Bind2 resources (tag.HASH), so a device keeps
	// its resource across proxy restarts; random per process when empty.
	Secret string `yaml:"secret"`
	// Limits bound what a client may send.
	Limits LimitsConfig `yaml:"limits"`
	// Timeouts bound how long the proxy waits.
	Timeouts TimeoutsConfig `yaml:"timeouts"`
	// QueueSize is the number of stanzas buffered per direction before the
	// reader of the other leg waits (backpressure).
	QueueSize int `yaml:"queue_size"`
}

// LimitsConfig bounds client input; all checked before any XML decoding.
type LimitsConfig struct {
	// MaxStanzaBytes caps one stanza after authentication (Prosody: 256 KiB).
	MaxStanzaBytes int `yaml:"max_stanza_bytes"`
	// MaxPreauthBytes caps one element before authentication.
	MaxPreauthBytes int `yaml:"max_preauth_bytes"`
	// MaxDepth caps element nesting inside one stanza.
	MaxDepth int `yaml:"max_depth"`
	// MaxDetachedSessions caps the 2.0 sessions held for resumption; the
	// oldest is closed to make room.
	MaxDetachedSessions int `yaml:"max_detached_sessions"`
	// MaxDetachedPerAccount caps one account's share of them, so that one
	// account's reconnect storm cannot push every other account's
	// sessions out; past it the account's own oldest is closed.
	MaxDetachedPerAccount int `yaml:"max_detached_per_account"`
	// MaxUnacked caps the stanzas a 2.0 client has not acknowledged; past
	// it the session ends (<policy-violation/>) rather than grow.
	MaxUnacked int `yaml:"max_unacked"`
	// MaxCatchup caps the archived messages one Bind2 <sync/> (or room
	// catch-up) delivers; beyond it <synced/> says complete='false'.
	MaxCatchup int `yaml:"max_catchup"`
}

// TimeoutsConfig holds the proxy's timeouts.
type TimeoutsConfig struct {
	// Handshake bounds the time from connect to a bound session.
	Handshake Duration `yaml:"handshake"`
	// Idle closes a client that sent nothing for this long; 0 disables it.
	Idle Duration `yaml:"idle"`
	// Write bounds one write to a peer; a slower peer is disconnected.
	Write Duration `yaml:"write"`
	// UpstreamDial bounds connecting and negotiating TLS upstream.
	UpstreamDial Duration `yaml:"upstream_dial"`
	// Close is how long to wait for the peer's </stream:stream>.
	Close Duration `yaml:"close"`
	// Resume is how long a vanished 2.0 client's session is held, its
	// upstream leg open, for XEP-0198 resumption.
	Resume Duration `yaml:"resume"`
	// SetupStep bounds each optional part of the Bind2 replay (archive
	// metadata, catch-up, MUC joins): past it the session comes up without
	// that part and reports it (<join-failed/>, complete='false').
	SetupStep Duration `yaml:"setup_step"`
	// Drain bounds a graceful shutdown (SIGTERM, SIGINT): sessions still
	// open when it passes are dropped. Keep it below the time the process
	// manager waits before SIGKILL.
	Drain Duration `yaml:"drain"`
}

// Duration is a time.Duration written as "30s" or "5m" in YAML.
type Duration time.Duration

// UnmarshalYAML parses a Go duration string; a bad one is reported with
// its line and column, like every other decoding error.
func (d *Duration) UnmarshalYAML(node ast.Node) error {
	v, err := time.ParseDuration(strings.Trim(node.String(), `"'`))
	if err != nil {
		pos := node.GetToken().Position
		return fmt.Errorf("[%d:%d] %w", pos.Line, pos.Column, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// DefaultConfig returns the defaults; every field not set by a file or flag
// keeps the value given here.
func DefaultConfig() Config {
	return Config{
		Listen:      ":5222",
		UpstreamTLS: UpstreamTLSStartTLS,
		LogLevel:    "info",
		Limits: LimitsConfig{
			MaxStanzaBytes:  256 << 10,
			MaxPreauthBytes: 10000,
			MaxDepth:        64,

			MaxDetachedSessions:   10000,
			MaxDetachedPerAccount: 10,
			MaxUnacked:            10000,
			MaxCatchup:            2000,
		},
		Timeouts: TimeoutsConfig{
			Handshake:    Duration(30 * time.Second),
			Idle:         Duration(10 * time.Minute),
			Write:        Duration(30 * time.Second),
			UpstreamDial: Duration(10 * time.Second),
			Close:        Duration(5 * time.Second),
			Resume:       Duration(5 * time.Minute),
			SetupStep:    Duration(10 * time.Second),
			Drain:        Duration(10 * time.Second),
		},
		QueueSize: 32,
	}
}

// LoadConfigFile decodes a YAML file over the defaults. Decoding is strict:
// an unknown key or a value of the wrong type is an error naming the key and
// its line.
func LoadConfigFile(path string) (Config, error) {
	cfg := DefaultConfig()
	data, err := os.ReadFile(path)
	if err != nil {
		return cfg, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data), yaml.Strict(), yaml.DisallowUnknownField())
	// io.EOF: an empty file means "all defaults".
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return cfg, fmt.Errorf("%s: %s", path, yaml.FormatError(err, false, true))
	}
	return cfg, nil
}

// Validate reports every problem with the configuration, one per line.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	checkAddr := func(field, addr string, required bool) {
		if addr == "" {
			if required {
				bad(field, "is required")
			}
			return
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad(field, "%q is not HOST:PORT: %v", addr, err)
		}
	}
	checkAddr("listen", c.Listen, false)
	checkAddr("direct_tls_listen", c.DirectTLSListen, false)
	checkAddr("upstream", c.Upstream, true)
	if c.Listen == "" && c.DirectTLSListen == "" {
		bad("listen", "one of listen and direct_tls_listen is required")
	}
	switch c.UpstreamTLS {
	case UpstreamTLSNone, UpstreamTLSStartTLS, UpstreamTLSDirect:
	default:
		bad("upstream_tls", "%q is not one of none, starttls, tls", c.UpstreamTLS)
	}
	if len(c.Domains) == 0 {
		bad("domains", "at least one domain is required")
	}
	for _, d := range c.Domains {
		if d == "" || strings.ContainsAny(d, "@/ ") {
			bad("domains", "%q is not a domain", d)
		}
	}
	if (c.Cert == "") != (c.Key == "") {
		bad("cert", "cert and key go together")
	}
	if c.Cert == "" && c.DirectTLSListen != "" {
		bad("direct_tls_listen", "needs cert and key")
	}
	if c.Cert == "" && !c.AllowPlaintext {
		bad("cert", "without cert and key clients can only log in with allow_plaintext")
	}
	if _, err := ParseLogLevel(c.LogLevel); err != nil {
		bad("log_level", "%v", err)
	}
	c.validateLimits(bad)
	return errors.Join(errs...)
}

func (c *Config) validateLimits(bad func(field, format string, args ...any)) {
	if c.Limits.MaxStanzaBytes < 4096 {
		bad("limits.max_stanza_bytes", "%d is below 4096", c.Limits.MaxStanzaBytes)
	}
	if c.Limits.MaxPreauthBytes < 1024 || c.Limits.MaxPreauthBytes > c.Limits.MaxStanzaBytes {
		bad("limits.max_preauth_bytes", "%d must be between 1024 and max_stanza_bytes", c.Limits.MaxPreauthBytes)
	}
	if c.Limits.MaxDepth < 8 {
		bad("limits.max_depth", "%d is below 8", c.Limits.MaxDepth)
	}
	if c.Limits.MaxDetachedSessions < 1 {
		bad("limits.max_detached_sessions", "must be at least 1")
	}
	if c.Limits.MaxDetachedPerAccount < 1 || c.Limits.MaxDetachedPerAccount > c.Limits.MaxDetachedSessions {
		bad("limits.max_detached_per_account", "%d must be between 1 and max_detached_sessions", c.Limits.MaxDetachedPerAccount)
	}
	if c.Limits.MaxCatchup < 1 {
		bad("limits.max_catchup", "must be at least 1")
	}
	if c.Limits.MaxUnacked < 16 {
		bad("limits.max_unacked", "%d is below 16", c.Limits.MaxUnacked)
	}
	for name, d := range map[string]Duration{
		"timeouts.handshake": c.Timeouts.Handshake, "timeouts.write": c.Timeouts.Write,
		"timeouts.upstream_dial": c.Timeouts.UpstreamDial, "timeouts.close": c.Timeouts.Close,
		"timeouts.resume": c.Timeouts.Resume, "timeouts.setup_step": c.Timeouts.SetupStep,
		"timeouts.drain": c.Timeouts.Drain,
	} {
		if d <= 0 {
			bad(name, "must be positive")
		}
	}
	if c.Timeouts.Idle < 0 {
		bad("timeouts.idle", "must not be negative (0 disables it)")
	}
	if c.QueueSize < 1 {
		bad("queue_size", "must be at least 1")
	}
}
