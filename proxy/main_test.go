package proxy

import (
	"testing"

	"go.uber.org/goleak"
)

// testHeader is a client's stream header to the proxy's test domain.
const testHeader = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>`

// TestMain fails the package when any test leaves a goroutine behind: every
// session, relay leg, dial and fake server must be gone once Shutdown and
// the tests' cleanups have run.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
