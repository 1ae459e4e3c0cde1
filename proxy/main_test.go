package proxy

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when any test leaves a goroutine behind: every
// session, relay leg, dial and fake server must be gone once Shutdown and
// the tests' cleanups have run.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
