#!/usr/bin/env bash
# Installs what the test suite needs beyond Go itself. Idempotent and quiet
# when everything is already present. Every later dependency of the tests
# (npm MCP servers, PostgreSQL, NATS) is installed from here, never by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
go mod download
# bubblewrap: the reference the sandbox start-up benchmark compares against.
if ! command -v bwrap >/dev/null 2>&1; then
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap; } >/dev/null
fi
