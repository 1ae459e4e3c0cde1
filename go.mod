module github.com/xmpp2proxy/xmpp2proxy

go 1.26.8

require (
	github.com/goccy/go-yaml v1.19.2
	go.uber.org/goleak v1.3.0
	mellium.im/sasl v0.3.2
)

require golang.org/x/crypto v0.27.0 // indirect
