module github.com/xmpp2proxy/xmpp2proxy

go 1.26.8

require (
	github.com/goccy/go-yaml v1.19.2
	go.uber.org/goleak v1.3.0
	mellium.im/sasl v0.3.2
)

require (
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/spf13/cobra v1.10.2 // indirect
	github.com/spf13/pflag v1.1.0 // indirect
	golang.org/x/crypto v0.27.0 // indirect
)
