// Command xmpp2proxy fronts an unmodified XMPP 1.0 server (Prosody,
// ejabberd) and relays classic clients to it unchanged.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCmd().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "xmpp2proxy:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "xmpp2proxy",
		Short:         "An XMPP proxy in front of an unmodified XMPP 1.0 server",
		SilenceUsage:  true,
		SilenceErrors: true,
		// --version prints what the version command prints.
		Version: versionString(),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.AddCommand(newServeCmd(), newCheckConfigCmd(), newVersionCmd(), newDemoCmd())
	return root
}
