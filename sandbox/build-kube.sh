#!/usr/bin/env bash
# Build kube-apiserver and kube-controller-manager 1.20 from Debian's
# `kubernetes` source package and cache the binaries, so only the first
# sandbox start on a machine pays for the build (about 4 minutes on 2 cores).
#
# Usage: sandbox/build-kube.sh CACHE_DIR
# Leaves CACHE_DIR/bin/{kube-apiserver,kube-controller-manager}. Needs root
# (apt-get) unless the Debian packages below are already installed.
set -euo pipefail

cache_dir=${1:?usage: build-kube.sh CACHE_DIR}
bin_dir="$cache_dir/bin"
if [[ -x "$bin_dir/kube-apiserver" && -x "$bin_dir/kube-controller-manager" ]]; then
  exit 0
fi

need_pkgs=(golang-go rsync jq golang-github-modern-go-reflect2-dev dpkg-dev)
missing=()
for p in "${need_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/soteria-kube-build.XXXXXX")
src_list=/etc/apt/sources.list.d/soteria-kube-src.sources
cleanup() {
  rm -f "$src_list"
  rm -rf "$work"
}
trap cleanup EXIT

# `apt-get source` needs deb-src entries. Derive them from the machine's own
# Debian sources (whatever mirror it uses) for the duration of the download.
if ! apt-get source --print-uris kubernetes >/dev/null 2>&1; then
  if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
    sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources >"$src_list"
  elif [[ -f /etc/apt/sources.list ]]; then
    src_list=/etc/apt/sources.list.d/soteria-kube-src.list
    sed -n 's/^deb \(.*\)$/deb-src \1/p' /etc/apt/sources.list >"$src_list"
  fi
  apt-get update -qq
fi

cd "$work"
apt-get source -qq --download-only kubernetes >/dev/null
dpkg-source --no-check -x kubernetes_*.dsc tree >/dev/null
tree="$work/tree"

# Kubernetes 1.20 vendors reflect2 1.0.1, which crashes under Go >= 1.18.
# Swap in Debian's reflect2 1.0.2 sources (no tests).
vend="$tree/vendor/github.com/modern-go/reflect2"
rm -f "$vend"/*.go "$vend"/*.s
for f in /usr/share/gocode/src/github.com/modern-go/reflect2/*.go /usr/share/gocode/src/github.com/modern-go/reflect2/*.s; do
  [[ -e "$f" ]] || continue
  [[ "$f" == *_test.go ]] && continue
  cp "$f" "$vend/"
done

mkdir -p "$work/.go/src/k8s.io" "$work/home"
ln -s "$tree" "$work/.go/src/k8s.io/kubernetes"
(
  cd "$work/.go/src/k8s.io/kubernetes"
  export GOPATH="$work/.go" CGO_ENABLED=0 GOPROXY=off GOFLAGS=-mod=vendor \
    HOME="$work/home" GOCACHE="$work/gocache"
  make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >"$work/build.log" 2>&1 || {
    tail -n 40 "$work/build.log" >&2
    exit 1
  }
)
mkdir -p "$bin_dir"
for b in kube-apiserver kube-controller-manager; do
  install -m 0755 "$tree/_output/bin/$b" "$bin_dir/$b.tmp"
  mv "$bin_dir/$b.tmp" "$bin_dir/$b"
done
