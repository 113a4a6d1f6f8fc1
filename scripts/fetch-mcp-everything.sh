#!/usr/bin/env bash
# fetch-mcp-everything.sh -- installs the published MCP reference server,
# @modelcontextprotocol/server-everything, into DEST for the MCP client's tests.
#
# Usage: scripts/fetch-mcp-everything.sh DEST      (e.g. build/tools/mcp)
#
# The version is pinned so every machine tests against the same server; npm's lock file in
# DEST records the integrity of every package. Does nothing when DEST already has it.
set -euo pipefail

PKG="@modelcontextprotocol/server-everything"
PKG_VERSION="2026.8.31"

die() { echo "fetch-mcp-everything.sh: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: fetch-mcp-everything.sh DEST"
dest=$1
entry="$dest/node_modules/$PKG/dist/index.js"
have=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' \
    "$dest/node_modules/$PKG/package.json" 2>/dev/null || true)
if [ -f "$entry" ] && [ "$have" = "$PKG_VERSION" ]; then
    echo "$PKG $PKG_VERSION already in $dest"
    exit 0
fi
command -v npm >/dev/null || die "npm not found: install Node.js with npm (Debian packages 'nodejs' and 'npm') and retry"
mkdir -p "$dest"
echo "fetching $PKG@$PKG_VERSION from the npm registry"
npm install --prefix "$dest" --no-audit --no-fund --silent "$PKG@$PKG_VERSION" ||
    die "npm install $PKG@$PKG_VERSION failed (is the npm registry reachable?)"
[ -f "$entry" ] || die "$entry missing after npm install"
echo "installed $PKG $PKG_VERSION into $dest"
