#!/usr/bin/env bash
# Prepares the test ground: Debian packages, and kube-apiserver + kube-controller-manager built from Debian's
# kubernetes source package. Idempotent; the build is cached under $DEPLOYER_TESTENV_CACHE.
set -euo pipefail

cache=${DEPLOYER_TESTENV_CACHE:-$HOME/.cache/deployer-testenv}
bin="$cache/bin"
mkdir -p "$bin"

sudo=()
if [ "$(id -u)" != 0 ]; then sudo=(sudo); fi

packages=(golang-go etcd-server rsync docker-registry apache2-utils subversion git dpkg-dev openssl ca-certificates)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done

need_src=0
if [ ! -x "$bin/kube-apiserver" ] || [ ! -x "$bin/kube-controller-manager" ]; then need_src=1; fi

if [ "$need_src" = 1 ] && ! ls /etc/apt/sources.list.d/deployer-src.sources >/dev/null 2>&1; then
  # deb-src entries for the same archives as the binary ones, so that `apt-get source` works.
  sed -e 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
    | "${sudo[@]}" tee /etc/apt/sources.list.d/deployer-src.sources >/dev/null
  updated=0
else
  updated=1
fi

if [ "${#missing[@]}" -gt 0 ] || [ "$need_src" = 1 ]; then
  echo "testenv: apt-get update"
  "${sudo[@]}" apt-get update -qq
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "testenv: installing ${missing[*]}"
  # Packaged daemons (etcd, registry) must not start on install: the tests start their own on free ports.
  policy=/usr/sbin/policy-rc.d
  placed=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod +x "$policy"
    placed=1
  fi
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ "$placed" = 1 ]; then "${sudo[@]}" rm -f "$policy"; fi
fi

if [ "$need_src" = 1 ]; then
  src="$cache/src"
  rm -rf "$src"
  mkdir -p "$src"
  echo "testenv: fetching the kubernetes source package"
  (cd "$src" && apt-get source -qq kubernetes >/dev/null)
  dir=$(find "$src" -maxdepth 1 -mindepth 1 -type d -name 'kubernetes-*' | head -n 1)
  mkdir -p "$dir/.go/src/k8s.io"
  ln -sfn ../../.. "$dir/.go/src/k8s.io/kubernetes"
  echo "testenv: building kube-apiserver and kube-controller-manager (about 5 minutes on 2 cores)"
  start=$(date +%s)
  (cd "$dir/.go/src/k8s.io/kubernetes" && GOPATH="$dir/.go" GOFLAGS=-mod=vendor GO111MODULE=on CGO_ENABLED=0 \
    GOCACHE="$cache/gocache" make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >"$cache/build.log" 2>&1) || {
    tail -n 40 "$cache/build.log"; exit 1; }
  cp "$dir/_output/bin/kube-apiserver" "$dir/_output/bin/kube-controller-manager" "$bin/"
  echo "testenv: built in $(( $(date +%s) - start )) s"
  rm -rf "$src"
fi

"$bin/kube-apiserver" --version
echo "testenv: ready ($bin)"
