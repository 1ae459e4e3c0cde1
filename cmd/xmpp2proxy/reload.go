package main

import (
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/xmpp2proxy/xmpp2proxy/proxy"
)

// reloadOnSIGHUP reloads srv's client-facing certificate from its files on
// every SIGHUP (systemd's ExecReload, a certbot deploy hook), until stop is
// called. Sessions keep running; a failed reload keeps the certificate in
// use and says why at error level. It must be called before serve listens:
// until then a SIGHUP would end the process, as it does by default.
func reloadOnSIGHUP(srv *proxy.Server, log *slog.Logger) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-hup:
				reloadCertificate(srv, log)
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
		<-finished
	}
}

func reloadCertificate(srv *proxy.Server, log *slog.Logger) {
	leaf, err := srv.ReloadCertificate()
	if err != nil {
		log.Error("certificate reload failed; still serving the previous certificate", "err", err)
		return
	}
	log.Info("certificate reloaded", "subject", leaf.Subject.String(), "not_after", leaf.NotAfter, "serial", leaf.SerialNumber.String())
}
