# Builds the manager image (the default target), the node agent image (--target node-agent) and
# the kubectl plugin (--target kubectl-meridian).
# Not used by the tests (no Docker engine there); kept buildable.
FROM golang:1.26 AS build
ARG AGENT_VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY apis/ apis/
COPY cmd/ cmd/
COPY config/crd/member/ config/crd/member/
COPY controllers/ controllers/
COPY internal/ internal/
RUN CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o /manager ./cmd/manager
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${AGENT_VERSION}" -o /node-agent ./cmd/node-agent
RUN CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o /kubectl-meridian ./cmd/kubectl-meridian

# The kubectl plugin runs on a user's machine, not in the cluster: extract it with
# `docker build --target kubectl-meridian --output bin/ .`
FROM scratch AS kubectl-meridian
COPY --from=build /kubectl-meridian /kubectl-meridian

# The node agent runs as root with only NET_ADMIN and NET_RAW (the DaemonSet drops every other
# capability): the dataplane programs the node's network.
FROM gcr.io/distroless/static AS node-agent
COPY --from=build /node-agent /node-agent
ENTRYPOINT ["/node-agent"]

FROM gcr.io/distroless/static:nonroot AS manager
COPY --from=build /manager /manager
USER 65532:65532
ENTRYPOINT ["/manager"]
