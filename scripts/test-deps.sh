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
# npm MCP servers, the TypeScript SDK client and the bridges the gateway's
# integration tests and benchmark run (testdata/npm, pinned by its lock file).
# Needs Node.js 20 or later with npm; Debian's own nodejs (18) is too old.
if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	echo "test-deps: Node.js >= 20 with npm is required for testdata/npm (https://nodejs.org)" >&2
	exit 1
fi
# The tree's digest is recorded after each install and checked on every run:
# a tree changed since (a test that tampered with it instead of its own copy,
# an interrupted install) is installed again, not tested against.
tree_digest() {
	find testdata/npm/node_modules -type f ! -name .warden-tree.sha256 -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
}
digest=testdata/npm/node_modules/.warden-tree.sha256
if [ ! -f testdata/npm/node_modules/.package-lock.json ] || [ testdata/npm/package-lock.json -nt testdata/npm/node_modules/.package-lock.json ] ||
	[ ! -f "$digest" ] || [ "$(cat "$digest")" != "$(tree_digest)" ]; then
	[ -f "$digest" ] && echo "test-deps: testdata/npm/node_modules changed since it was installed; installing it again" >&2
	(cd testdata/npm && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
	tree_digest >"$digest"
fi
