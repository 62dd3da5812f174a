# rpcproxy: a static binary on a minimal base.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/rpcproxy ./cmd/rpcproxy

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/rpcproxy /usr/local/bin/rpcproxy
EXPOSE 4321
ENTRYPOINT ["/usr/local/bin/rpcproxy"]
CMD ["serve", "--config", "/etc/rpcproxy/rpcproxy.hcl"]
