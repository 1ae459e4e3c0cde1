package harness

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
	"syscall"
	"text/template"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/internal/demo"
)

//go:embed ejabberd.yml.tmpl
var ejabberdConfig string

var ejabberdTemplate = template.Must(template.New("ejabberd").Parse(ejabberdConfig))

// ejabberdctlCfg makes the instance private: no su to the ejabberd user,
// its own node name and distribution port (no epmd), all state in Dir.
// See ejabberd-recipe.md for why each line is needed.
const ejabberdctlCfg = `EXEC_CMD=as_current_user
ERLANG_NODE=ejabberd-test-{{.Port}}@localhost
ERL_DIST_PORT={{.DistPort}}
ERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0 -kernel inet_dist_use_interface {127,0,0,1}"
EJABBERD_CONFIG_PATH={{.Dir}}/etc/ejabberd.yml
SPOOL_DIR={{.Dir}}/spool
LOGS_DIR={{.Dir}}/logs
EJABBERD_LOG_PATH={{.Dir}}/logs/ejabberd.log
EJABBERD_PID_PATH={{.Dir}}/ejabberd.pid
CONTRIB_MODULES_PATH={{.Dir}}/modules
CONTRIB_MODULES_CONF_DIR={{.Dir}}/modules.d
VMARGS={{.Dir}}/etc/vm.args
`

var ejabberdctlTemplate = template.Must(template.New("ejabberdctl").Parse(ejabberdctlCfg))

// Ejabberd is a private ejabberd instance.
type Ejabberd struct {
	loopback
	dir      string
	distPort int
	// wsPort serves ejabberd's own RFC 7395 endpoint (WebSocketURL).
	wsPort int
	// proxyPort is a c2s listener that reads PROXY protocol headers
	// (ejabberd_proxyproto.go).
	proxyPort int
	// Cert is the certificate ejabberd serves.
	Cert *Cert
}

// StartEjabberd starts ejabberd for domain on free loopback ports.
func StartEjabberd(ctx context.Context, domain string) (*Ejabberd, error) {
	if err := EnsureInstalled("ejabberdctl", "ejabberd"); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "xmpp2proxy-ejabberd-")
	if err != nil {
		return nil, err
	}
	e := &Ejabberd{loopback: loopback{domain: domain}, dir: dir}
	if err := e.start(ctx); err != nil {
		log := e.Log()
		e.Stop()
		return nil, fmt.Errorf("start ejabberd: %w\n%s", err, log)
	}
	return e, nil
}

func (e *Ejabberd) start(ctx context.Context) error {
	for _, d := range []string{"etc", "home", "spool", "logs"} {
		if err := os.Mkdir(filepath.Join(e.dir, d), 0o700); err != nil {
			return err
		}
	}
	var err error
	if e.Cert, err = SelfSigned(e.dir, e.domain, e.domain); err != nil {
		return err
	}
	for _, p := range []*int{&e.port, &e.tlsPort, &e.distPort, &e.wsPort, &e.proxyPort} {
		if *p, err = FreePort(); err != nil {
			return err
		}
	}
	if err := e.writeFiles(); err != nil {
		return err
	}
	return e.launch(ctx)
}

// launch starts ejabberd on the files already written and returns once
// both c2s ports accept connections.
func (e *Ejabberd) launch(ctx context.Context) error {
	if out, err := e.ctl("start"); err != nil {
		return fmt.Errorf("ejabberdctl start: %w\n%s", err, out)
	}
	// Polling the port is faster than `ejabberdctl started`, which sleeps.
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := WaitForPort(ctx, e.Addr(), nil); err != nil {
		return err
	}
	return WaitForPort(ctx, e.DirectTLSAddr(), nil)
}

func (e *Ejabberd) writeFiles() error {
	certKey, err := concatFiles(e.Cert.CertFile, e.Cert.KeyFile)
	if err != nil {
		return err
	}
	certPath := filepath.Join(e.dir, "etc", "cert.pem")
	if err := os.WriteFile(certPath, certKey, 0o600); err != nil {
		return err
	}
	vals := map[string]any{"Dir": e.dir, "Port": e.port, "DirectTLSPort": e.tlsPort, "DistPort": e.distPort, "CertFile": certPath,
		"WebSocketPort": e.wsPort, "ProxyProtocolPort": e.proxyPort}
	files := []struct {
		name string
		tmpl *template.Template
	}{{"etc/ejabberd.yml", ejabberdTemplate}, {"etc/ejabberdctl.cfg", ejabberdctlTemplate}}
	for _, f := range files {
		var b bytes.Buffer
		if err := f.tmpl.Execute(&b, vals); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(e.dir, f.name), b.Bytes(), 0o600); err != nil {
			return err
		}
	}
	if inetrc, err := os.ReadFile("/etc/ejabberd/inetrc"); err == nil {
		_ = os.WriteFile(filepath.Join(e.dir, "etc", "inetrc"), inetrc, 0o600)
	}
	return os.WriteFile(filepath.Join(e.dir, "home", ".erlang.cookie"), []byte("xmpp2proxytestcookie"), 0o400)
}

func concatFiles(paths ...string) ([]byte, error) {
	var out []byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
	}
	return out, nil
}

// ctl runs ejabberdctl for this instance with a clean environment, so no
// variable of the caller's changes which node or files it uses.
func (e *Ejabberd) ctl(args ...string) ([]byte, error) {
	cmd := exec.Command("ejabberdctl", append([]string{"--config-dir", filepath.Join(e.dir, "etc")}, args...)...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/bin", "HOME=" + filepath.Join(e.dir, "home")}
	cmd.Dir = e.dir
	return cmd.CombinedOutput()
}

// Name implements Server.
func (e *Ejabberd) Name() string { return "ejabberd" }

// Register implements Server.
func (e *Ejabberd) Register(user, password string) error {
	if out, err := e.ctl("register", user, e.domain, password); err != nil {
		return fmt.Errorf("ejabberdctl register %s: %w\n%s", user, err, out)
	}
	return nil
}

// Log implements Server.
func (e *Ejabberd) Log() string {
	return demo.Tail(filepath.Join(e.dir, "logs", "ejabberd.log"), 4000) + demo.Tail(filepath.Join(e.dir, "logs", "error.log"), 2000)
}

// Restart implements Server: ejabberdctl stop (its clients get
// <system-shutdown/>), then start on the same ports, configuration and
// Mnesia spool, so accounts, archives and offline messages survive.
func (e *Ejabberd) Restart(ctx context.Context) error {
	_, _ = e.ctl("stop")
	if !e.waitClosed(15 * time.Second) {
		e.kill()
		if !e.waitClosed(5 * time.Second) {
			return fmt.Errorf("restart ejabberd: it did not stop\n%s", e.Log())
		}
	}
	for _, addr := range []string{e.Addr(), e.DirectTLSAddr()} {
		if err := waitPortClosed(ctx, addr); err != nil {
			return err
		}
	}
	if err := e.launch(ctx); err != nil {
		return fmt.Errorf("restart ejabberd: %w\n%s", err, e.Log())
	}
	return nil
}

// waitPortClosed waits until nothing accepts connections on addr.
func waitPortClosed(ctx context.Context, addr string) error {
	for {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			return nil
		}
		c.Close()
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s still accepts connections: %w", addr, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop implements Server. It asks ejabberd to stop, waits for its ports to
// close, and kills the Erlang VM if it lingers.
func (e *Ejabberd) Stop() error {
	if e.port != 0 {
		_, _ = e.ctl("stop")
		if !e.waitClosed(15 * time.Second) {
			e.kill()
			e.waitClosed(5 * time.Second)
		}
	}
	if strings.HasPrefix(filepath.Base(e.dir), "xmpp2proxy-ejabberd-") {
		return os.RemoveAll(e.dir)
	}
	return nil
}

func (e *Ejabberd) waitClosed(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", itoa(e.distPort)), 100*time.Millisecond)
		if err != nil {
			return true
		}
		c.Close()
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

func (e *Ejabberd) kill() {
	if pid := e.PID(); pid > 1 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// PID implements Server: the Erlang VM's, from the pid file ejabberdctl
// writes.
func (e *Ejabberd) PID() int {
	b, err := os.ReadFile(filepath.Join(e.dir, "ejabberd.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}
