# rpcproxy: a static binary on a minimal base.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The version `rpcproxy version` prints and agents gossip: give it with
# --build-arg VERSION=… COMMIT=… (a context without .git, such as a git
# worktree's), else it is read from the copied .git, else "dev".
ARG VERSION=""
ARG COMMIT=""
RUN version="${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}" && \
    commit="${COMMIT:-$(git rev-parse HEAD 2>/dev/null || true)}" && \
    CGO_ENABLED=0 go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X main.version=$version -X main.commit=$commit" -o /out/rpcproxy ./cmd/rpcproxy

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/rpcproxy /usr/local/bin/rpcproxy
EXPOSE 4321
ENTRYPOINT ["/usr/local/bin/rpcproxy"]
CMD ["serve", "--config", "/etc/rpcproxy/rpcproxy.hcl"]
