package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/xmpp2proxy/xmpp2proxy/internal/demo"
	"github.com/xmpp2proxy/xmpp2proxy/proxy"
)

// demoAccounts are registered on the demo's Prosody: user -> password.
var demoAccounts = [][2]string{{"alice", "alice-demo"}, {"bob", "bob-demo"}}

func newDemoCmd() *cobra.Command {
	var listen, directTLS, logLevel string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Start a private Prosody with demo accounts and the proxy in front of it",
		Long: "demo starts Debian's Prosody (installing it with apt-get when missing and run as root)\n" +
			"on a free loopback port with demo accounts, makes a self-signed certificate and runs\n" +
			"the proxy in front of it until Ctrl-C, which stops both and removes all temporary state.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), cmd.OutOrStdout(), listen, directTLS, logLevel)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:5222", "client address (STARTTLS, plaintext allowed on loopback)")
	cmd.Flags().StringVar(&directTLS, "direct-tls-listen", "127.0.0.1:5223", "direct TLS client address")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

func runDemo(ctx context.Context, out io.Writer, listen, directTLS, logLevel string) error {
	const domain = "localhost"
	// Ctrl-C also ends a pipe the output may go through (make demo | tee):
	// a write to it must fail quietly, not kill the demo before cleanup.
	signal.Ignore(syscall.SIGPIPE)
	fmt.Fprintln(out, "starting a private Prosody ...")
	startCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	upstream, err := demo.StartProsody(startCtx, domain)
	if err != nil {
		return err
	}
	defer upstream.Stop()
	for _, a := range demoAccounts {
		if err := upstream.Register(a[0], a[1]); err != nil {
			return err
		}
	}
	certDir, err := os.MkdirTemp("", "xmpp2proxy-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(certDir)
	cert, err := demo.SelfSigned(certDir, "proxy", domain)
	if err != nil {
		return err
	}
	cfg := proxy.DefaultConfig()
	cfg.Listen, cfg.DirectTLSListen = listen, directTLS
	cfg.Upstream, cfg.UpstreamTLS = upstream.Addr(), proxy.UpstreamTLSNone
	cfg.Domains = []string{domain}
	cfg.Cert, cfg.Key = cert.CertFile, cert.KeyFile
	cfg.AllowPlaintext = strings.HasPrefix(listen, "127.") || strings.HasPrefix(listen, "localhost:")
	cfg.LogLevel = logLevel
	srv, err := proxy.NewServer(cfg, nil, newLogger(logLevel))
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	printDemoHelp(out, srv, upstream.Addr(), cert)
	<-ctx.Done()
	fmt.Fprintln(out, "\nstopping the proxy and Prosody ...")
	shutCtx, cancelShut := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelShut()
	return srv.Shutdown(shutCtx)
}

func printDemoHelp(out io.Writer, srv *proxy.Server, upstream string, cert *demo.Cert) {
	sum := sha256.Sum256(cert.Pair.Certificate[0])
	fmt.Fprintf(out, `
xmpp2proxy demo is running.

  proxy (STARTTLS) : %s
  proxy (direct TLS): %s
  upstream Prosody : %s (plaintext, loopback only)
  domain           : localhost
  certificate      : self-signed, SHA-256 %X
                     (%s)

Demo accounts:
`, srv.Addr(), srv.DirectTLSAddr(), upstream, sum[:], cert.CertFile)
	for _, a := range demoAccounts {
		fmt.Fprintf(out, "  %s@localhost   password %s\n", a[0], a[1])
	}
	fmt.Fprintf(out, `
Point any XMPP client at host 127.0.0.1, port %d, and accept the
self-signed certificate; plaintext login is allowed because the proxy
listens on loopback only. For example, with the classic client script:

  /usr/bin/python3 integration/clients/classic.py --addr %s \
      --jid alice@localhost --password alice-demo --to bob@localhost --message hello

Press Ctrl-C to stop both and remove the temporary state.
`, srv.Addr().(*net.TCPAddr).Port, srv.Addr())
}
