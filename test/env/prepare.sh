#!/usr/bin/env bash
# Prepares the test ground: Debian packages; kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and
# kube-proxy built from Debian's kubernetes source package (one make); the programs of the ground's images
# (test/images/*: the pause process, the sample service), static Go binaries; the deployer's image (buildah, see
# deployer-image.sh). Idempotent; cached under $DEPLOYER_TESTENV_CACHE.
set -euo pipefail

cache=${DEPLOYER_TESTENV_CACHE:-$HOME/.cache/deployer-testenv}
bin="$cache/bin"
mkdir -p "$bin"
# Two runs on one machine (two clones' CI at once) share this cache and apt's lock: one prepares at a time, and the
# other then finds everything done. Two builds of the deployer's image at once both rewrote its OCI layout, and one
# failed ("writing blob: rename … no such file or directory"). --close: nothing this script starts holds the lock.
if [ "${DEPLOYER_PREPARE_LOCKED:-}" != 1 ]; then
  exec env DEPLOYER_PREPARE_LOCKED=1 flock --close "$cache/prepare.lock" bash "$0" "$@"
fi

sudo=()
if [ "$(id -u)" != 0 ]; then sudo=(sudo); fi

packages=(golang-go etcd-server rsync docker-registry apache2-utils subversion git dpkg-dev openssl ca-certificates
  prometheus prometheus-alertmanager)
kube_binaries=(kube-apiserver kube-controller-manager)
# The real node (kubelet, containerd, images) is part of the ground by default (test/env/parts.ts);
# DEPLOYER_TESTENV_NODE=0 leaves it out, for quick local runs with TESTGROUND_PARTS without `node`.
node=1
if [ "${DEPLOYER_TESTENV_NODE:-1}" = 0 ]; then node=0; fi
if [ "$node" = 1 ]; then
  packages+=(containerd runc containernetworking-plugins iptables conntrack iproute2 util-linux buildah mmdebstrap)
  kube_binaries+=(kube-scheduler kubelet kube-proxy)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done

need_src=0
for b in "${kube_binaries[@]}"; do
  if [ ! -x "$bin/$b" ]; then need_src=1; fi
done

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
  start=$SECONDS
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ "$placed" = 1 ]; then "${sudo[@]}" rm -f "$policy"; fi
  echo "testenv: installed in $((SECONDS - start)) s"
fi

if [ "$need_src" = 1 ]; then
  src="$cache/src"
  rm -rf "$src"
  mkdir -p "$src"
  echo "testenv: fetching the kubernetes source package"
  start=$SECONDS
  (cd "$src" && apt-get source -qq kubernetes >/dev/null)
  echo "testenv: fetched in $((SECONDS - start)) s"
  dir=$(find "$src" -maxdepth 1 -mindepth 1 -type d -name 'kubernetes-*' | head -n 1)
  mkdir -p "$dir/.go/src/k8s.io"
  ln -sfn ../../.. "$dir/.go/src/k8s.io/kubernetes"
  echo "testenv: building ${kube_binaries[*]} (about 5 minutes on 2 cores for the control plane, 16 with the node)"
  start=$SECONDS
  what=()
  for b in "${kube_binaries[@]}"; do what+=("cmd/$b"); done
  (cd "$dir/.go/src/k8s.io/kubernetes" && GOPATH="$dir/.go" GOFLAGS=-mod=vendor GO111MODULE=on CGO_ENABLED=0 \
    GOCACHE="$cache/gocache" make WHAT="${what[*]}" >"$cache/build.log" 2>&1) || {
    tail -n 40 "$cache/build.log"; exit 1; }
  # Through a rename: a running test ground may be executing the old binary (cp would fail with ETXTBSY).
  for b in "${kube_binaries[@]}"; do cp "$dir/_output/bin/$b" "$bin/$b.new" && mv -f "$bin/$b.new" "$bin/$b"; done
  echo "testenv: built in $((SECONDS - start)) s"
  rm -rf "$src"
fi

if [ "$node" = 1 ]; then
# The programs of the ground's images, rebuilt when their source changed.
images="$(cd "$(dirname "$0")/../images" && pwd)"
for dir in "$images"/*/; do
  name=$(basename "$dir")
  sum=$(sha256sum "$dir"main.go | cut -d' ' -f1)
  if [ ! -x "$bin/ground-$name" ] || [ "$(cat "$bin/ground-$name.sha256" 2>/dev/null)" != "$sum" ]; then
    echo "testenv: building the ground image program $name"
    start=$SECONDS
    (cd "$dir" && GO111MODULE=off CGO_ENABLED=0 GOCACHE="$cache/gocache" go build -trimpath -ldflags='-s -w' -o "$bin/ground-$name.new" .)
    mv -f "$bin/ground-$name.new" "$bin/ground-$name"
    echo "$sum" >"$bin/ground-$name.sha256"
    echo "testenv: built $name in $((SECONDS - start)) s"
  fi
done

# The deployer's own image, from the working tree's Dockerfile (layers cached by buildah).
bash "$(dirname "$0")/deployer-image.sh" "$cache/deployer-image"
fi

"$bin/kube-apiserver" --version
echo "testenv: ready ($bin)"
