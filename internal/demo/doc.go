// Package demo starts what `xmpp2proxy demo` puts behind the proxy: a
// private Prosody on free loopback ports with its own configuration and
// data directory, and a self-signed certificate. The end-to-end test
// harness (integration/harness) uses the same launcher and certificate
// maker, so the demo runs exactly what the tests run.
//
// It depends on nothing but the standard library, and installs Debian's
// prosody with apt-get only when it is missing and the process is root.
package demo
