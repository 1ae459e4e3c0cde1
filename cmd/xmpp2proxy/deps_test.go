package main

import (
	"os/exec"
	"strings"
	"testing"
)

// goTool returns the go command, skipping the test when there is none.
func goTool(t *testing.T) string {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found:", err)
	}
	return goCmd
}

// The production binary links no test code: no package under integration/
// (the end-to-end harness and its apt-get runner) is among its
// dependencies, on any build of this package.
func TestBinaryLinksNoIntegrationPackage(t *testing.T) {
	out, err := exec.Command(goTool(t), "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps printed too little to trust:\n%s", out)
	}
	for _, p := range deps {
		if strings.Contains("/"+p+"/", "/integration/") {
			t.Errorf("cmd/xmpp2proxy depends on %s", p)
		}
	}
}
