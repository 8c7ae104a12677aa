#!/bin/sh
# Installs Docker Compose v2+ as the `docker compose` CLI plugin, built from the Go module
# proxy. The deployment tests need only `docker compose config`, which runs without a Docker
# engine; machines without Docker's apt repository have no packaged plugin (Debian 12 ships
# only the old Python docker-compose 1.29, which predates the Compose Specification's `name`).
#
#   sh deploy/compose/install-compose.sh         # ~1 minute on 2 cores, needs Go >= 1.24
#
# Environment: COMPOSE_VERSION [v5.6.0], DOCKER_CONFIG [~/.docker].
set -eu

VERSION=${COMPOSE_VERSION:-v5.6.0}
MAJOR=${VERSION%%.*}
PLUGINS=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins

if [ -x "$PLUGINS/docker-compose" ] \
    && [ "$("$PLUGINS/docker-compose" version --short 2>/dev/null)" = "${VERSION#v}" ]; then
    echo "docker compose ${VERSION#v} already installed in $PLUGINS"
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
# A throwaway main module: `go install pkg@version` refuses modules whose go.mod has
# exclude directives, as compose's does.
go mod init compose-plugin-build >/dev/null 2>&1
GOFLAGS=-mod=mod go get "github.com/docker/compose/$MAJOR@$VERSION"
mkdir -p "$PLUGINS"
GOFLAGS=-mod=mod go build -trimpath \
    -ldflags "-s -w -X github.com/docker/compose/$MAJOR/internal.Version=$VERSION" \
    -o "$PLUGINS/docker-compose" "github.com/docker/compose/$MAJOR/cmd"
"$PLUGINS/docker-compose" version
