package proxy

import (
	"cmp"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"strings"
	"time"
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
	// WebSocketListen is the RFC 7395 WebSocket address; empty turns it
	// off. WebSocketPath is the HTTP path served there. WebSocketTLS
	// serves wss with cert and key; without it the listener is plain,
	// for a TLS-terminating web server in front. WebSocketOrigins are
	// the Origin patterns a browser page may connect from; empty allows
	// only pages from the host the request names. See wsconfig.go.
	WebSocketListen  string   `yaml:"websocket_listen"`
	WebSocketPath    string   `yaml:"websocket_path"`
	WebSocketTLS     bool     `yaml:"websocket_tls"`
	WebSocketOrigins []string `yaml:"websocket_origins"`
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
	// LogLevel is debug, info, warn or error, read by slog.Level's own
	// text decoding (so WARN and offsets such as debug-4 also work).
	LogLevel slog.Level `yaml:"log_level"`
	// LogFormat is text (logfmt, for people and grep) or json (one
	// object per line, for log shippers).
	LogFormat string `yaml:"log_format"`
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
	// MetricsListen is the HTTP address serving /metrics, /healthz and
	// /readyz; empty (the default) turns it off.
	MetricsListen string `yaml:"metrics_listen"`

	// ProxyProtocol names the listeners (starttls, direct_tls) that sit
	// behind a load balancer: each connection on them must begin with a
	// PROXY protocol v1 or v2 header giving the client's address. On the
	// other listeners a PROXY header is refused. See proxyproto.go.
	ProxyProtocol []string `yaml:"proxy_protocol"`
	// ProxyProtocolFrom, when set, are the only addresses (IPs or CIDR
	// networks: the balancers) a PROXY header is accepted from.
	ProxyProtocolFrom []string `yaml:"proxy_protocol_from"`
	// UpstreamProxyProtocol is v1 or v2 to begin each upstream connection
	// with a PROXY header carrying the client's address; empty sends none.
	UpstreamProxyProtocol string `yaml:"upstream_proxy_protocol"`

	// src is where each key was set, for problems to name; nil for a
	// Config built in code.
	src *configSource
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
	Handshake time.Duration `yaml:"handshake"`
	// Idle closes a client that sent nothing for this long; 0 disables it.
	Idle time.Duration `yaml:"idle"`
	// Write bounds one write to a peer; a slower peer is disconnected.
	Write time.Duration `yaml:"write"`
	// UpstreamDial bounds connecting and negotiating TLS upstream.
	UpstreamDial time.Duration `yaml:"upstream_dial"`
	// Close is how long to wait for the peer's </stream:stream>.
	Close time.Duration `yaml:"close"`
	// Resume is how long a vanished 2.0 client's session is held, its
	// upstream leg open, for XEP-0198 resumption.
	Resume time.Duration `yaml:"resume"`
	// SetupStep bounds each optional part of the Bind2 replay (archive
	// metadata, catch-up, MUC joins): past it the session comes up without
	// that part and reports it (<join-failed/>, complete='false').
	SetupStep time.Duration `yaml:"setup_step"`
	// CatchupRecheck is how long after a catch-up that brought messages
	// the proxy asks the account archive once more for what was archived
	// after it; 0 turns the second look off. ejabberd can make a message
	// that arrives while the session comes online visible in the archive
	// only after the catch-up's query ran, and spool it offline until the
	// next login (docs/design.md, "A second look at the archive").
	CatchupRecheck time.Duration `yaml:"catchup_recheck"`
	// Drain bounds a graceful shutdown (SIGTERM, SIGINT): sessions still
	// open when it passes are dropped. Keep it below the time the process
	// manager waits before SIGKILL.
	Drain time.Duration `yaml:"drain"`
	// ProxyHeader bounds the wait for the PROXY header on a listener that
	// requires one, so that a silent connection soon lets go.
	ProxyHeader time.Duration `yaml:"proxy_header"`
}

// Duration is another name for time.Duration, which the timeouts are
// (written "30s" or "5m" in YAML). It stays for code that builds a Config
// with proxy.Duration(5*time.Second); new code writes time.Duration.
type Duration = time.Duration

// DefaultConfig returns the defaults; every field not set by a file or flag
// keeps the value given here.
func DefaultConfig() Config {
	return Config{
		Listen:      ":5222",
		UpstreamTLS: UpstreamTLSStartTLS,
		LogLevel:    slog.LevelInfo,
		LogFormat:   LogFormatText,
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
			Handshake:      30 * time.Second,
			Idle:           10 * time.Minute,
			Write:          30 * time.Second,
			UpstreamDial:   10 * time.Second,
			Close:          5 * time.Second,
			Resume:         5 * time.Minute,
			SetupStep:      10 * time.Second,
			CatchupRecheck: time.Second,
			Drain:          10 * time.Second,
			ProxyHeader:    5 * time.Second,
		},
		QueueSize: 32,

		WebSocketPath: "/xmpp-websocket",
	}
}

// Log formats.
const (
	LogFormatText = "text" // logfmt: key=value pairs, for people and grep
	LogFormatJSON = "json" // one JSON object per line, for log shippers
)

// ConfigProblem is one thing wrong with a configuration.
type ConfigProblem struct {
	// Key is the YAML key ("limits.max_depth"); empty for the file as a
	// whole (a syntax error).
	Key string
	// Where is where the value came from: "line 3" or "flag --listen";
	// empty for a default or a key that is missing.
	Where string
	// Msg says what is wrong, in the file's terms.
	Msg string
}

// Error renders the problem as "key (line 3): message".
func (p ConfigProblem) Error() string {
	switch {
	case p.Key == "" && p.Where == "":
		return p.Msg
	case p.Key == "":
		return p.Where + ": " + p.Msg
	case p.Where == "":
		return p.Key + ": " + p.Msg
	}
	return p.Key + " (" + p.Where + "): " + p.Msg
}

// line is the file line the problem is on, or MaxInt for none.
func (p ConfigProblem) line() int {
	var n int
	if _, err := fmt.Sscanf(p.Where, "line %d", &n); err != nil {
		return math.MaxInt
	}
	return n
}

// ConfigError lists everything wrong with a configuration, one problem per
// cause: a key whose value cannot be decoded is not checked again, and no
// check reports a key only because another one is wrong.
type ConfigError struct {
	// File is the config file's path, or empty for flags alone.
	File     string
	Problems []ConfigProblem
}

// Error names the file once, then each problem on a line of its own.
func (e *ConfigError) Error() string {
	prefix := "config: "
	if e.File != "" {
		prefix = e.File + ": "
	}
	if len(e.Problems) == 1 {
		return prefix + e.Problems[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s%d problems:", prefix, len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(strings.ReplaceAll(p.Error(), "\n", "\n  "))
	}
	return b.String()
}

// configErr returns nil for no problems: never a nil *ConfigError, which
// would be a non-nil error.
func configErr(file string, problems []ConfigProblem) error {
	if len(problems) == 0 {
		return nil
	}
	return &ConfigError{File: file, Problems: problems}
}

// SetOrigin records that key was set other than by the file (by a flag:
// "flag --upstream"), so that a problem with it names that. The value
// given there is the one checked from now on, even if the file's was
// wrong (that is still reported, as the file's problem).
func (c *Config) SetOrigin(key, origin string) {
	if c.src == nil {
		c.src = &configSource{origins: map[string]string{}, broken: map[string]bool{}}
	}
	for k := range c.src.origins {
		if strings.HasPrefix(k, key+"[") { // a list's items, set by the file
			delete(c.src.origins, k)
		}
	}
	c.src.origins[key] = origin
	delete(c.src.broken, key)
}

func (c *Config) origin(key string) string {
	if c.src == nil {
		return ""
	}
	return c.src.origins[key]
}

func (c *Config) broken(key string) bool { return c.src != nil && c.src.broken[key] }

// LoadConfig is what serve and check-config both run before anything
// listens, so that a configuration check-config accepts starts: the
// defaults, the YAML file at path (none when empty) over them, override
// (the command line's flags, which win) over that, then Check. It returns
// the configuration and the client-facing TLS config loaded from cert and
// key (nil without them). The error is a *ConfigError listing every
// problem, or the file's read error.
func LoadConfig(path string, override func(*Config)) (Config, *tls.Config, error) {
	cfg := DefaultConfig()
	var problems []ConfigProblem
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return cfg, nil, err
		}
		cfg, err = ParseConfig(data)
		var ce *ConfigError
		if errors.As(err, &ce) {
			problems = ce.Problems
		}
		if cfg.src.fatal {
			// Nothing in the file counts: checking would only report as
			// missing what the file may well set.
			return cfg, nil, configErr(path, problems)
		}
	}
	if override != nil {
		override(&cfg)
	}
	tlsConfig, err := cfg.Check()
	var ce *ConfigError
	if errors.As(err, &ce) {
		problems = append(problems, ce.Problems...)
	}
	// In the file's order, so the operator can fix them top to bottom;
	// keys that are missing or set by flags come last.
	slices.SortStableFunc(problems, func(a, b ConfigProblem) int { return cmp.Compare(a.line(), b.line()) })
	return cfg, tlsConfig, configErr(path, problems)
}

// Check runs every check the proxy needs before it listens: Validate,
// then loading the certificate and key. It returns the client-facing TLS
// config, nil without a certificate. NewServer runs it too, so a
// configuration that passes check-config is one that serve starts with.
func (c *Config) Check() (*tls.Config, error) {
	k := configChecker{c: c}
	k.validate()
	var tlsConfig *tls.Config
	if c.Cert != "" && c.Key != "" && !k.failed("cert") && !k.failed("key") {
		tlsConfig = k.loadCertificate()
	}
	return tlsConfig, configErr("", k.problems)
}

// Validate reports every problem with the configuration's values, without
// reading any file; Check adds loading the certificate.
func (c *Config) Validate() error {
	k := configChecker{c: c}
	k.validate()
	return configErr("", k.problems)
}
