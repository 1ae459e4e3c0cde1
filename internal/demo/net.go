package demo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"time"
)

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// WaitForPort waits until something accepts connections on addr. A
// non-nil alive is called between attempts; its error ends the wait.
func WaitForPort(ctx context.Context, addr string, alive func() error) error {
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if alive != nil {
			if aerr := alive(); aerr != nil {
				return aerr
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", addr, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// EnsureInstalled makes sure binary is on PATH, installing the Debian
// package pkg with apt-get when it is missing and we are root; otherwise
// its error gives the command to run.
func EnsureInstalled(binary, pkg string) error {
	if _, err := exec.LookPath(binary); err == nil {
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("%s is not installed: run `sudo apt-get install -y %s`", binary, pkg)
	}
	for _, args := range [][]string{{"update", "-qq"}, {"install", "-y", "-qq", pkg}} {
		cmd := exec.Command("apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get %v: %w\n%s", args, err, out)
		}
	}
	if _, err := exec.LookPath(binary); err != nil {
		return errors.New(binary + " still missing after installing " + pkg)
	}
	return nil
}
