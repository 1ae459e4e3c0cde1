package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/xmpp2proxy/xmpp2proxy/proxy"
)

// serveFlags binds every flag to a Config field; a flag set on the command
// line wins over the config file. serve and check-config register the
// same flags, so check-config can check the exact command line serve runs.
type serveFlags struct {
	configFile string
	flags      proxy.Config
}

// flagKeys maps each flag to the YAML key it overrides, for problems to
// name the flag, and applies it.
var flagKeys = map[string]struct {
	key   string
	apply func(dst, src *proxy.Config)
}{
	"listen":            {"listen", func(d, s *proxy.Config) { d.Listen = s.Listen }},
	"direct-tls-listen": {"direct_tls_listen", func(d, s *proxy.Config) { d.DirectTLSListen = s.DirectTLSListen }},
	"upstream":          {"upstream", func(d, s *proxy.Config) { d.Upstream = s.Upstream }},
	"upstream-tls":      {"upstream_tls", func(d, s *proxy.Config) { d.UpstreamTLS = s.UpstreamTLS }},
	"upstream-insecure": {"upstream_insecure", func(d, s *proxy.Config) { d.UpstreamInsecure = s.UpstreamInsecure }},
	"domain":            {"domains", func(d, s *proxy.Config) { d.Domains = s.Domains }},
	"cert":              {"cert", func(d, s *proxy.Config) { d.Cert = s.Cert }},
	"key":               {"key", func(d, s *proxy.Config) { d.Key = s.Key }},
	"allow-plaintext":   {"allow_plaintext", func(d, s *proxy.Config) { d.AllowPlaintext = s.AllowPlaintext }},
	"log-level":         {"log_level", func(d, s *proxy.Config) { d.LogLevel = s.LogLevel }},
	"log-format":        {"log_format", func(d, s *proxy.Config) { d.LogFormat = s.LogFormat }},
	"drain-timeout":     {"timeouts.drain", func(d, s *proxy.Config) { d.Timeouts.Drain = s.Timeouts.Drain }},
	"websocket-listen":  {"websocket_listen", func(d, s *proxy.Config) { d.WebSocketListen = s.WebSocketListen }},

	"proxy-protocol":          {"proxy_protocol", func(d, s *proxy.Config) { d.ProxyProtocol = s.ProxyProtocol }},
	"proxy-protocol-from":     {"proxy_protocol_from", func(d, s *proxy.Config) { d.ProxyProtocolFrom = s.ProxyProtocolFrom }},
	"upstream-proxy-protocol": {"upstream_proxy_protocol", func(d, s *proxy.Config) { d.UpstreamProxyProtocol = s.UpstreamProxyProtocol }},
	"metrics-listen":          {"metrics_listen", func(d, s *proxy.Config) { d.MetricsListen = s.MetricsListen }},
}

func (f *serveFlags) register(fs *pflag.FlagSet) {
	d := proxy.DefaultConfig()
	fs.StringVar(&f.configFile, "config", "", "YAML config file (flags given on the command line win)")
	fs.StringVar(&f.flags.Listen, "listen", d.Listen, "client address offering STARTTLS")
	fs.StringVar(&f.flags.DirectTLSListen, "direct-tls-listen", "", "client address for XEP-0368 direct TLS (off when empty)")
	fs.StringVar(&f.flags.WebSocketListen, "websocket-listen", "", "client address for XMPP over WebSocket, RFC 7395 (off when empty; see websocket_* in the config)")
	fs.StringVar(&f.flags.Upstream, "upstream", "", "upstream XMPP server, HOST:PORT")
	fs.StringVar(&f.flags.UpstreamTLS, "upstream-tls", d.UpstreamTLS, "upstream transport: none, starttls or tls")
	fs.BoolVar(&f.flags.UpstreamInsecure, "upstream-insecure", false, "do not verify the upstream certificate")
	fs.StringArrayVar(&f.flags.Domains, "domain", nil, "XMPP domain served (repeatable)")
	fs.StringVar(&f.flags.Cert, "cert", "", "PEM certificate for client TLS")
	fs.StringVar(&f.flags.Key, "key", "", "PEM private key for client TLS")
	fs.BoolVar(&f.flags.AllowPlaintext, "allow-plaintext", false, "let clients authenticate without TLS")
	fs.TextVar(&f.flags.LogLevel, "log-level", d.LogLevel, "debug, info, warn or error")
	fs.StringVar(&f.flags.LogFormat, "log-format", d.LogFormat, "text (key=value) or json (one object per line)")
	fs.DurationVar(&f.flags.Timeouts.Drain, "drain-timeout", d.Timeouts.Drain,
		"on SIGTERM or SIGINT, how long sessions get to end before they are dropped (timeouts.drain)")

	fs.StringSliceVar(&f.flags.ProxyProtocol, "proxy-protocol", nil,
		"listeners behind a load balancer that must send a PROXY v1/v2 header: starttls, direct_tls (comma-separated or repeated)")
	fs.StringSliceVar(&f.flags.ProxyProtocolFrom, "proxy-protocol-from", nil,
		"only these IPs or networks (the balancers) may send a PROXY header (comma-separated or repeated)")
	fs.StringVar(&f.flags.UpstreamProxyProtocol, "upstream-proxy-protocol", "",
		"send the upstream a PROXY header with the client's address: v1 or v2 (off when empty)")
	fs.StringVar(&f.flags.MetricsListen, "metrics-listen", "", "HTTP address for /metrics, /healthz and /readyz (off when empty)")
}

// load builds the configuration as serve runs it: the file, the flags
// that were set explicitly, and every check, certificate included
// (proxy.LoadConfig). It returns the TLS config it loaded.
func (f *serveFlags) load(fs *pflag.FlagSet) (proxy.Config, *tls.Config, error) {
	return proxy.LoadConfig(f.configFile, func(cfg *proxy.Config) {
		fs.Visit(func(fl *pflag.Flag) {
			if k, ok := flagKeys[fl.Name]; ok {
				k.apply(cfg, &f.flags)
				cfg.SetOrigin(k.key, "flag --"+fl.Name)
			}
		})
	})
}

func newServeCmd() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the proxy",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, tlsConfig, err := f.load(cmd.Flags())
			if err != nil {
				return err
			}
			log := newLogger(cmd.ErrOrStderr(), cfg.LogLevel, cfg.LogFormat)
			srv, err := proxy.NewServer(cfg, tlsConfig, log)
			if err != nil {
				return err
			}
			defer reloadOnSIGHUP(srv, log)()
			return srv.ListenAndServe(cmd.Context())
		},
	}
	f.register(cmd.Flags())
	return cmd
}

// newLogger writes level and above to w as text (logfmt) or JSON. The
// level and format were checked with the rest of the configuration.
func newLogger(w io.Writer, level slog.Level, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == proxy.LogFormatJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func newCheckConfigCmd() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "check-config",
		Short: "Run every check serve runs before it listens, certificate included",
		Long: "check-config takes serve's flags and runs exactly what serve runs before it listens:\n" +
			"decoding the file, applying the flags, checking every value and loading the\n" +
			"certificate and key. It prints ok, or every problem with the key and line to change.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, _, err := f.load(cmd.Flags()); err != nil {
				return err
			}
			name := f.configFile
			if name == "" {
				name = "config"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", name)
			return nil
		},
	}
	f.register(cmd.Flags())
	return cmd
}
