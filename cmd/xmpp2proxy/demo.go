package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/xmpp2proxy/xmpp2proxy/internal/demo"
	"github.com/xmpp2proxy/xmpp2proxy/proxy"
)

// demoAccounts are registered on the demo's Prosody: user -> password.
var demoAccounts = [][2]string{{"alice", "alice-demo"}, {"bob", "bob-demo"}}

// startProsody starts the demo's upstream. Tests replace it to prove that
// the demo checks its ports before it starts anything.
var startProsody = demo.StartProsody

func newDemoCmd() *cobra.Command {
	var listen, directTLS string
	var logLevel slog.Level
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Start a private Prosody with demo accounts and the proxy in front of it",
		Long: "demo starts Debian's Prosody (installing it with apt-get when missing and run as root)\n" +
			"on a free loopback port with demo accounts, makes a self-signed certificate and runs\n" +
			"the proxy in front of it until Ctrl-C, which stops both and removes all temporary state.\n" +
			"If 5222 or 5223 is taken, pick other addresses with --listen and --direct-tls-listen\n" +
			"(an empty --direct-tls-listen turns direct TLS off).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), cmd.OutOrStdout(), listen, directTLS, logLevel)
		},
	}
	cmd.Flags().StringVar(&listen, flagListen[2:], "127.0.0.1:5222", "client address (STARTTLS, plaintext allowed on loopback)")
	cmd.Flags().StringVar(&directTLS, flagDirectTLS[2:], "127.0.0.1:5223", "direct TLS client address (off when empty)")
	cmd.Flags().TextVar(&logLevel, "log-level", slog.LevelInfo, "debug, info, warn or error")
	return cmd
}

// The demo's listener flags as typed, named in the errors that ask for
// another port.
const (
	flagListen    = "--listen"
	flagDirectTLS = "--direct-tls-listen"
)

func runDemo(ctx context.Context, out io.Writer, listen, directTLS string, logLevel slog.Level) error {
	const domain = "localhost"
	// Ctrl-C also ends a pipe the output may go through (make demo | tee):
	// a write to it must fail quietly, not kill the demo before cleanup.
	signal.Ignore(syscall.SIGPIPE)
	// The ports first: a taken port is the likeliest failure, and says so
	// before a minute of installing and starting Prosody, not after.
	ports, err := reserveDemoPorts(listen, directTLS)
	if err != nil {
		return err
	}
	defer ports.release()
	fmt.Fprintln(out, "starting a private Prosody ...")
	startCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	upstream, err := startProsody(startCtx, domain)
	if err != nil {
		return err
	}
	defer upstream.Stop()
	for _, a := range demoAccounts {
		if err := upstream.Register(a[0], a[1]); err != nil {
			return err
		}
	}
	cert, certDir, err := newDemoCert(domain)
	if err != nil {
		return err
	}
	defer os.RemoveAll(certDir)
	cfg := proxy.DefaultConfig()
	cfg.Listen, cfg.DirectTLSListen = ports.listen, ports.directTLS
	cfg.Upstream, cfg.UpstreamTLS = upstream.Addr(), proxy.UpstreamTLSNone
	cfg.Domains = []string{domain}
	cfg.Cert, cfg.Key = cert.CertFile, cert.KeyFile
	cfg.AllowPlaintext = ports.loopback
	cfg.LogLevel = logLevel
	srv, err := proxy.NewServer(cfg, nil, newLogger(os.Stderr, logLevel, proxy.LogFormatText))
	if err != nil {
		return err
	}
	// The proxy opens its own listeners: hand the ports over.
	ports.release()
	if err := srv.Start(); err != nil {
		// Taken in the moment between the check and now: name the flag.
		again, perr := reserveDemoPorts(ports.listen, ports.directTLS)
		if perr != nil {
			return perr
		}
		again.release()
		return err
	}
	if err := printDemoHelp(out, srv.Addr(), srv.DirectTLSAddr(), upstream.Addr(), cert); err != nil {
		_ = srv.Shutdown(context.Background())
		return err
	}
	<-ctx.Done()
	fmt.Fprintln(out, "\nstopping the proxy and Prosody ...")
	shutCtx, cancelShut := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelShut()
	return srv.Shutdown(shutCtx)
}

// demoPorts holds the demo's client ports from the check until the proxy
// takes them over, so Prosody's free ports cannot land on them.
type demoPorts struct {
	// listen and directTLS are the addresses to give the proxy: as given,
	// except that a port 0 is replaced by the port the system picked.
	listen, directTLS string
	// loopback: the STARTTLS listener is on a loopback address.
	loopback  bool
	listeners []net.Listener
}

// reserveDemoPorts listens on the demo's client addresses (directTLS may
// be empty). Its error says which address is unavailable and names the
// flag that picks another.
func reserveDemoPorts(listen, directTLS string) (*demoPorts, error) {
	p := &demoPorts{}
	for _, l := range []struct {
		flag, addr string
		dst        *string
	}{{flagListen, listen, &p.listen}, {flagDirectTLS, directTLS, &p.directTLS}} {
		if l.addr == "" && l.flag == flagDirectTLS {
			continue
		}
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			p.release()
			return nil, demoListenError(l.flag, l.addr, err)
		}
		p.listeners = append(p.listeners, ln)
		*l.dst = l.addr
		tcp := ln.Addr().(*net.TCPAddr)
		if host, port, err := net.SplitHostPort(l.addr); err == nil && port == "0" {
			*l.dst = net.JoinHostPort(host, strconv.Itoa(tcp.Port))
		}
		if l.flag == flagListen {
			p.loopback = tcp.IP.IsLoopback()
		}
	}
	return p, nil
}

// release closes the reserved listeners; it may be called more than once.
func (p *demoPorts) release() {
	for _, ln := range p.listeners {
		ln.Close()
	}
	p.listeners = nil
}

// demoListenError explains why the demo cannot listen on addr and which
// flag picks another address.
func demoListenError(flag, addr string, err error) error {
	example := "127.0.0.1:0"
	if host, port, perr := net.SplitHostPort(addr); perr == nil {
		if n, aerr := strconv.Atoi(port); aerr == nil && n > 0 && n+10000 <= 65535 {
			example = net.JoinHostPort(host, strconv.Itoa(n+10000))
		}
	}
	what := fmt.Sprintf("cannot listen on %s: %v", addr, err)
	if errors.Is(err, syscall.EADDRINUSE) {
		what = fmt.Sprintf("%s is already in use (by an XMPP server, or another demo?)", addr)
	}
	return fmt.Errorf("%s; pick another address with %s, for example `xmpp2proxy demo %s %s` or `make demo DEMO_FLAGS='%s %s'`",
		what, flag, flag, example, flag, example)
}

// newDemoCert makes the proxy's self-signed certificate in a new temporary
// directory that any local user can read (mode 0755, certificate 0644),
// so a client run by another user can be pointed at it; the key stays
// 0600. The caller removes dir.
func newDemoCert(domain string) (cert *demo.Cert, dir string, err error) {
	dir, err = os.MkdirTemp("", "xmpp2proxy-demo-")
	if err != nil {
		return nil, "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return nil, "", err
	}
	if cert, err = demo.SelfSigned(dir, "proxy", domain); err != nil {
		os.RemoveAll(dir)
		return nil, "", err
	}
	return cert, dir, nil
}

// printDemoHelp tells the user where the proxy listens, how to check its
// certificate, and which accounts to log in with. directTLS may be nil.
func printDemoHelp(out io.Writer, addr, directTLS net.Addr, upstream string, cert *demo.Cert) error {
	fp, err := cert.Fingerprints()
	if err != nil {
		return err
	}
	direct := "off"
	if directTLS != nil {
		direct = directTLS.String()
	}
	host, port := "127.0.0.1", ""
	if tcp, ok := addr.(*net.TCPAddr); ok {
		port = strconv.Itoa(tcp.Port)
		if !tcp.IP.IsUnspecified() {
			host = tcp.IP.String()
		}
	}
	fmt.Fprintf(out, `
xmpp2proxy demo is running.

  proxy (STARTTLS)  : %s
  proxy (direct TLS): %s
  upstream Prosody  : %s (plaintext, loopback only)
  domain            : localhost

Certificate (self-signed for localhost; compare before you accept it):
  file    : %s
  SHA-1   : %s
  SHA-256 : %s
  SPKI pin: pin-sha256="%s"

Demo accounts:
`, addr, direct, upstream, cert.CertFile, fp.SHA1, fp.SHA256, fp.SPKIPin)
	for _, a := range demoAccounts {
		fmt.Fprintf(out, "  %s@localhost   password %s\n", a[0], a[1])
	}
	fmt.Fprintf(out, `
Point any XMPP client at host %s, port %s, and accept the self-signed
certificate after comparing its fingerprint; plaintext login is allowed
only when the proxy listens on loopback. For example, with the classic
client script:

  /usr/bin/python3 integration/clients/classic.py --addr %s \
      --jid alice@localhost --password alice-demo --to bob@localhost --message hello

Press Ctrl-C to stop both and remove the temporary state.
`, host, port, addr)
	return nil
}
