# syntax=docker/dockerfile:1
# drover-collector (OTLP :4317/:4318, admin API :7070, gossip :7946) and
# droverctl. Build from the repository root:
#
#   docker build -f deploy/docker/collector.Dockerfile -t drover-collector .
#
# The build stage fetches, with drover-deps, ONNX Runtime (the optimizer runs
# candidates and the serving version on it) and, on linux/amd64, the embedded
# ClickHouse engine (libchdb.so) into DROVER_CACHE; the runtime stage carries
# that cache and finds both through the same variable. With --clickhouse
# pointing at a server the engine library is not used. docs/deploy.md says
# how to run it.

ARG GO_VERSION=1.26
ARG DEBIAN_RELEASE=trixie

FROM golang:${GO_VERSION}-${DEBIAN_RELEASE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
ENV CGO_ENABLED=1 DROVER_CACHE=/opt/drover/cache
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# The engine is pinned for linux/amd64 only; elsewhere the image needs a
# ClickHouse server (--clickhouse clickhouse://...).
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    if [ "$(go env GOARCH)" = amd64 ]; then \
      go run ./shared/cmd/drover-deps; \
    else \
      go run ./shared/cmd/drover-deps --only onnxruntime; \
    fi
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags "-X github.com/drover-ml/drover/shared/buildinfo.Version=${VERSION}" \
      -o /out/drover-collector ./collector/cmd/drover-collector \
 && go build -trimpath -ldflags "-X github.com/drover-ml/drover/shared/buildinfo.Version=${VERSION}" \
      -o /out/droverctl ./collector/cmd/droverctl

FROM debian:${DEBIAN_RELEASE}-slim
# curl is for the health check only.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 drover \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/drover --no-create-home --shell /usr/sbin/nologin drover \
 && mkdir -p /var/lib/drover/collector /var/lib/drover/registry /etc/drover \
 && chown -R 10001:10001 /var/lib/drover
COPY --from=build /opt/drover/cache /opt/drover/cache
COPY --from=build /out/drover-collector /usr/local/bin/drover-collector
COPY --from=build /out/droverctl /usr/local/bin/droverctl
ENV DROVER_CACHE=/opt/drover/cache
USER 10001:10001
WORKDIR /var/lib/drover
VOLUME ["/var/lib/drover"]
# 4317 OTLP gRPC, 4318 OTLP HTTP, 7070 admin API, 7946 gossip (TCP and UDP).
EXPOSE 4317/tcp 4318/tcp 7070/tcp 7946/tcp 7946/udp
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:7070/readyz"]
# Add --config, --clickhouse, --node-name, --join, --gossip-key-file as the
# container's command.
ENTRYPOINT ["/usr/local/bin/drover-collector", "serve", "--data-dir=/var/lib/drover/collector", "--otlp-grpc-addr=:4317", "--otlp-http-addr=:4318", "--admin-addr=:7070", "--gossip-addr=:7946"]
