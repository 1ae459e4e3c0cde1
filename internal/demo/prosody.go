package demo

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"time"
)

//go:embed prosody.cfg.lua.tmpl
var prosodyConfig string

var prosodyTemplate = template.Must(template.New("prosody").Parse(prosodyConfig))

// dirPrefix names the temporary directories Stop may remove.
const dirPrefix = "xmpp2proxy-prosody-"

// Prosody is a private Prosody process listening on 127.0.0.1 only, with
// its configuration, data, log and certificate in one temporary directory.
type Prosody struct {
	domain        string
	port, tlsPort int
	dir, cfgFile  string
	cmd           *exec.Cmd
	exited        chan error
	// Cert is the certificate Prosody serves for STARTTLS and direct TLS.
	Cert *Cert
}

// StartProsody starts Prosody for domain on free loopback ports, after
// installing Debian's prosody package if it is missing and we are root.
// It returns once both c2s ports accept connections; Stop undoes it.
func StartProsody(ctx context.Context, domain string) (*Prosody, error) {
	if err := EnsureInstalled("prosody", "prosody"); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		return nil, err
	}
	p := &Prosody{domain: domain, dir: dir, cfgFile: filepath.Join(dir, "prosody.cfg.lua")}
	if err := p.start(ctx); err != nil {
		log := p.Log()
		p.Stop()
		return nil, fmt.Errorf("start prosody: %w\n%s", err, log)
	}
	return p, nil
}

func (p *Prosody) start(ctx context.Context) error {
	var err error
	if err = os.Mkdir(filepath.Join(p.dir, "data"), 0o750); err != nil {
		return err
	}
	if p.Cert, err = SelfSigned(p.dir, p.domain, p.domain); err != nil {
		return err
	}
	if p.port, err = FreePort(); err != nil {
		return err
	}
	if p.tlsPort, err = FreePort(); err != nil {
		return err
	}
	var cfg bytes.Buffer
	err = prosodyTemplate.Execute(&cfg, map[string]any{
		"Dir": p.dir, "Domain": p.domain, "Port": p.port, "DirectTLSPort": p.tlsPort,
		"CertFile": p.Cert.CertFile, "KeyFile": p.Cert.KeyFile, "LogLevel": "info",
	})
	if err != nil {
		return err
	}
	if err := os.WriteFile(p.cfgFile, cfg.Bytes(), 0o640); err != nil {
		return err
	}
	return p.launch(ctx)
}

// launch runs Prosody on the configuration already written and returns
// once both c2s ports accept connections.
func (p *Prosody) launch(ctx context.Context) error {
	p.cmd = exec.Command("prosody", "--config", p.cfgFile, "-F")
	p.cmd.Dir = p.dir
	out, err := os.Create(filepath.Join(p.dir, "stdout.log"))
	if err != nil {
		return err
	}
	p.cmd.Stdout, p.cmd.Stderr = out, out
	if err := p.cmd.Start(); err != nil {
		return err
	}
	p.exited = make(chan error, 1)
	go func() { p.exited <- p.cmd.Wait(); out.Close() }()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	alive := func() error {
		select {
		case err := <-p.exited:
			p.exited <- err
			return fmt.Errorf("prosody exited: %v", err)
		default:
			return nil
		}
	}
	if err := WaitForPort(ctx, p.Addr(), alive); err != nil {
		return err
	}
	return WaitForPort(ctx, p.DirectTLSAddr(), alive)
}

// Name returns "prosody".
func (p *Prosody) Name() string { return "prosody" }

// Domain returns the XMPP domain Prosody serves.
func (p *Prosody) Domain() string { return p.domain }

// Addr returns the plaintext/STARTTLS c2s address on 127.0.0.1.
func (p *Prosody) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)) }

// DirectTLSAddr returns the XEP-0368 direct TLS c2s address on 127.0.0.1.
func (p *Prosody) DirectTLSAddr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.tlsPort))
}

// MUCService returns the domain of Prosody's multi-user chat service.
func (p *Prosody) MUCService() string { return "conference." + p.domain }

// Dir returns the temporary directory holding Prosody's configuration,
// data, logs and certificate; Stop removes it.
func (p *Prosody) Dir() string { return p.dir }

// PID returns Prosody's process id, 0 if it is not running.
func (p *Prosody) PID() int {
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Register creates the account user@domain with password, through
// prosodyctl on the private configuration.
func (p *Prosody) Register(user, password string) error {
	cmd := exec.Command("prosodyctl", "--config", p.cfgFile, "register", user, p.domain, password)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("prosodyctl register %s: %w\n%s", user, err, out)
	}
	return nil
}

// Log returns the tail of Prosody's log and of its standard output, for
// error reports.
func (p *Prosody) Log() string {
	return Tail(filepath.Join(p.dir, "prosody.log"), 4000) + Tail(filepath.Join(p.dir, "stdout.log"), 2000)
}

// Restart stops Prosody as Stop does (its clients get <system-shutdown/>)
// and starts it again on the same ports, configuration and data, so
// accounts, archives and offline messages survive. It returns once both
// c2s ports accept connections again.
func (p *Prosody) Restart(ctx context.Context) error {
	p.interrupt()
	return p.launch(ctx)
}

// interrupt stops the Prosody process: SIGINT, then SIGKILL if it has not
// exited within 10 seconds.
func (p *Prosody) interrupt() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	p.cmd = nil
}

// Stop interrupts Prosody, kills it if it has not exited within 10
// seconds, and removes its temporary directory.
func (p *Prosody) Stop() error {
	p.interrupt()
	if strings.HasPrefix(filepath.Base(p.dir), dirPrefix) {
		return os.RemoveAll(p.dir)
	}
	return nil
}

// Tail returns the last n bytes of the file at path, or why it cannot:
// the end of a server's log, for an error message.
func Tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
