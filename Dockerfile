# Multi-stage build: a static binary on a distroless base, run as non-root.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# cmd/xmpp2proxy/packaging_test.go runs this exact build line (without
# Docker) and checks the binary is static: keep it one simple command.
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/xmpp2proxy ./cmd/xmpp2proxy

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/xmpp2proxy /usr/local/bin/xmpp2proxy
USER nonroot:nonroot
EXPOSE 5222 5223
ENTRYPOINT ["/usr/local/bin/xmpp2proxy"]
CMD ["serve", "--config", "/etc/xmpp2proxy/config.yaml"]
