# The two commands a newcomer needs: `make demo` and `make test`.
GO       ?= go
GOBIN    := $(shell $(GO) env GOPATH)/bin
PKGS     := ./...

.PHONY: demo test deps lint unit integration bench build

## demo: start a private Prosody and the proxy in front of it on 127.0.0.1:5222
## (other ports: make demo DEMO_FLAGS="--listen 127.0.0.1:15222 --direct-tls-listen 127.0.0.1:15223")
demo:
	$(GO) run ./cmd/xmpp2proxy demo $(DEMO_FLAGS)

## test: install what the tests need, then lint, unit and end-to-end tests
test: deps lint unit integration

deps:
	bash scripts/install-test-deps.sh

lint:
	@out=$$(gofmt -l . ); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) vet -tags integration $(PKGS)
	$(GOBIN)/staticcheck $(PKGS)
	$(GOBIN)/staticcheck -tags integration $(PKGS)
	@# go.mod and go.sum must be what `go mod tidy` makes of them (Go >= 1.23).
	$(GO) mod tidy -diff

unit:
	$(GO) test -race -count=1 $(PKGS)

## integration: end-to-end tests against real Prosody and ejabberd
integration:
	$(GO) test -race -count=1 -tags integration -timeout 30m ./integration/...

## bench: relay throughput and latency through the proxy vs direct, same run
bench:
	$(GO) test -tags integration -run '^$$' -bench . -benchtime 3x -timeout 30m ./integration/...

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/xmpp2proxy ./cmd/xmpp2proxy
