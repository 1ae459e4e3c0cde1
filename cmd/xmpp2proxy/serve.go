package main

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/xmpp2proxy/xmpp2proxy/proxy"
)

// serveFlags binds every flag to a Config field; a flag set on the command
// line wins over the config file.
type serveFlags struct {
	configFile string
	flags      proxy.Config
}

func (f *serveFlags) register(fs *pflag.FlagSet) {
	d := proxy.DefaultConfig()
	fs.StringVar(&f.configFile, "config", "", "YAML config file (flags given on the command line win)")
	fs.StringVar(&f.flags.Listen, "listen", d.Listen, "client address offering STARTTLS")
	fs.StringVar(&f.flags.DirectTLSListen, "direct-tls-listen", "", "client address for XEP-0368 direct TLS (off when empty)")
	fs.StringVar(&f.flags.Upstream, "upstream", "", "upstream XMPP server, HOST:PORT")
	fs.StringVar(&f.flags.UpstreamTLS, "upstream-tls", d.UpstreamTLS, "upstream transport: none, starttls or tls")
	fs.BoolVar(&f.flags.UpstreamInsecure, "upstream-insecure", false, "do not verify the upstream certificate")
	fs.StringArrayVar(&f.flags.Domains, "domain", nil, "XMPP domain served (repeatable)")
	fs.StringVar(&f.flags.Cert, "cert", "", "PEM certificate for client TLS")
	fs.StringVar(&f.flags.Key, "key", "", "PEM private key for client TLS")
	fs.BoolVar(&f.flags.AllowPlaintext, "allow-plaintext", false, "let clients authenticate without TLS")
	fs.StringVar(&f.flags.LogLevel, "log-level", d.LogLevel, "debug, info, warn or error")
	fs.DurationVar((*time.Duration)(&f.flags.Timeouts.Drain), "drain-timeout", time.Duration(d.Timeouts.Drain),
		"on SIGTERM or SIGINT, how long sessions get to end before they are dropped (timeouts.drain)")
}

// load decodes the config file (if any) and applies the flags that were
// set explicitly.
func (f *serveFlags) load(fs *pflag.FlagSet) (proxy.Config, error) {
	cfg := proxy.DefaultConfig()
	if f.configFile != "" {
		var err error
		if cfg, err = proxy.LoadConfigFile(f.configFile); err != nil {
			return cfg, err
		}
	}
	set := map[string]func(){
		"listen":            func() { cfg.Listen = f.flags.Listen },
		"direct-tls-listen": func() { cfg.DirectTLSListen = f.flags.DirectTLSListen },
		"upstream":          func() { cfg.Upstream = f.flags.Upstream },
		"upstream-tls":      func() { cfg.UpstreamTLS = f.flags.UpstreamTLS },
		"upstream-insecure": func() { cfg.UpstreamInsecure = f.flags.UpstreamInsecure },
		"domain":            func() { cfg.Domains = f.flags.Domains },
		"cert":              func() { cfg.Cert = f.flags.Cert },
		"key":               func() { cfg.Key = f.flags.Key },
		"allow-plaintext":   func() { cfg.AllowPlaintext = f.flags.AllowPlaintext },
		"log-level":         func() { cfg.LogLevel = f.flags.LogLevel },
		"drain-timeout":     func() { cfg.Timeouts.Drain = f.flags.Timeouts.Drain },
	}
	fs.Visit(func(fl *pflag.Flag) {
		if apply, ok := set[fl.Name]; ok {
			apply()
		}
	})
	return cfg, cfg.Validate()
}

func newServeCmd() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the proxy",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.load(cmd.Flags())
			if err != nil {
				return fmt.Errorf("config: %w", err)
			}
			log := newLogger(cfg.LogLevel)
			srv, err := proxy.NewServer(cfg, nil, log)
			if err != nil {
				return err
			}
			return srv.ListenAndServe(cmd.Context())
		},
	}
	f.register(cmd.Flags())
	return cmd
}

func newLogger(level string) *slog.Logger {
	lvl, _ := proxy.ParseLogLevel(level)
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
}

func newCheckConfigCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "check-config",
		Short: "Decode and validate a config file exactly as serve does",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := proxy.LoadConfigFile(path)
			if err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", path)
			return nil
		},
	}
	cmd.Flags().StringVar(&path, "config", "", "YAML config file")
	_ = cmd.MarkFlagRequired("config")
	return cmd
}
