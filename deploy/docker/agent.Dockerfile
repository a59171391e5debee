# syntax=docker/dockerfile:1
# drover-agent: serves <model-dir>/<model>/<version>/model.onnx over the Open
# Inference Protocol v2 (REST :8080, gRPC :8081). Build from the repository
# root:
#
#   docker build -f deploy/docker/agent.Dockerfile -t drover-agent .
#
# The build stage fetches ONNX Runtime with drover-deps (npm pack of the
# pinned onnxruntime-node, checked against its sha256) into DROVER_CACHE; the
# runtime stage carries that cache and finds the library through the same
# variable. docs/deploy.md says how to run it.

ARG GO_VERSION=1.26
ARG DEBIAN_RELEASE=trixie

FROM golang:${GO_VERSION}-${DEBIAN_RELEASE} AS build
# gcc comes with the golang image (cgo links ONNX Runtime's loader); npm
# fetches the native library.
RUN apt-get update \
 && apt-get install -y --no-install-recommends npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
ENV CGO_ENABLED=1 DROVER_CACHE=/opt/drover/cache
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go run ./shared/cmd/drover-deps --only onnxruntime
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags "-X github.com/drover-ml/drover/shared/buildinfo.Version=${VERSION}" \
      -o /out/drover-agent ./agent/cmd/drover-agent

FROM debian:${DEBIAN_RELEASE}-slim
# curl is for the health check only.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 drover \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/drover --no-create-home --shell /usr/sbin/nologin drover \
 && mkdir -p /var/lib/drover/models /var/lib/drover/agent /etc/drover \
 && chown -R 10001:10001 /var/lib/drover
COPY --from=build /opt/drover/cache /opt/drover/cache
COPY --from=build /out/drover-agent /usr/local/bin/drover-agent
ENV DROVER_CACHE=/opt/drover/cache
USER 10001:10001
WORKDIR /var/lib/drover
VOLUME ["/var/lib/drover"]
# 8080 REST, 8081 gRPC. The control API (pin, canary, shadow) stays on
# 127.0.0.1:8082 inside the container and is not exposed.
EXPOSE 8080/tcp 8081/tcp
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/v2/health/ready"]
# Add --config, --collector, --token-file, --label as the container's command.
ENTRYPOINT ["/usr/local/bin/drover-agent", "--model-dir=/var/lib/drover/models", "--data-dir=/var/lib/drover/agent", "--http-addr=:8080", "--grpc-addr=:8081"]
