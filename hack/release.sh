#!/usr/bin/env bash
# Builds Kompox's release archives: static musl binaries (no libc needed on the target) of the
# kubectl plugin and the three servers, one .tar.gz per binary set with the LICENSE notice and
# the README, SHA256SUMS over them, and the krew plugin manifest (dist/krew/kompox.yaml) with
# the archive's URI and sha256 filled in.
#
# Usage: hack/release.sh [--out DIR] [--version VERSION] [--from DIR]
#   --out      where the archives go (default dist/release)
#   --version  the release's version (default: the workspace's, from Cargo.toml)
#   --from     take the binaries from DIR instead of building them (tests: target/debug)
#   KOMPOX_RELEASE_URL  base URL the archives will be downloaded from (krew's `uri`)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$here/.." && pwd)
# shellcheck source=hack/lib/common.sh
source "$here/lib/common.sh"

out=$ROOT/dist/release version="" from=""
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=$2; shift 2 ;;
    --version) version=$2; shift 2 ;;
    --from) from=$2; shift 2 ;;
    *) die "unknown argument $1 (see the header of $0)" ;;
  esac
done
[ -n "$version" ] || version=v$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml")
[[ $version =~ ^v[0-9]+\.[0-9]+\.[0-9]+ ]] || die "version $version: want vMAJOR.MINOR.PATCH"
base_url=${KOMPOX_RELEASE_URL:-https://github.com/kompox/kompox/releases/download/$version}

MUSL=x86_64-unknown-linux-musl
plugin=kubectl-kompox
servers=(kompox-apiserver kompox-webhook kompox-controller)
if [ -z "$from" ]; then
  rustup target list --installed 2> /dev/null | grep -qx "$MUSL" || rustup target add "$MUSL" > /dev/null
  command -v musl-gcc > /dev/null || die "static binaries need musl-gcc: apt-get install musl-tools"
  # The musl target dir the real node's image build uses (hack/images.sh): one, reused.
  target=${KOMPOX_MUSL_TARGET_DIR:-$ROOT/target/musl}
  pkgs=()
  for b in "$plugin" "${servers[@]}"; do pkgs+=(-p "$b" --bin "$b"); done
  t=$SECONDS
  (cd "$ROOT" && CARGO_TARGET_DIR=$target cargo build --release --locked --target "$MUSL" "${pkgs[@]}" >&2)
  log "built the release binaries in $((SECONDS - t))s"
  from=$target/$MUSL/release
fi
for b in "$plugin" "${servers[@]}"; do [ -x "$from/$b" ] || die "$from/$b missing"; done

mkdir -p "$out"
# pack <archive name> <binary>...: a reproducible tar.gz (sorted, fixed owner and mtime).
pack() {
  local name=$1; shift
  local dir; dir=$(mktemp -d)
  for b in "$@"; do install -m 0755 "$from/$b" "$dir/$b"; done
  cp "$ROOT/README.md" "$dir/README.md"
  printf 'Kompox %s — licensed under the Apache License, Version 2.0.\n' "$version" > "$dir/LICENSE"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime='2000-01-01 00:00Z' \
    -C "$dir" -cf - . | gzip -n -9 > "$out/$name"
  rm -rf "$dir"
}
os_arch=linux_amd64
pack "kubectl-kompox_${version}_${os_arch}.tar.gz" "$plugin"
pack "kompox-servers_${version}_${os_arch}.tar.gz" "${servers[@]}"
(cd "$out" && sha256sum ./*.tar.gz | sed 's| \./| |' > SHA256SUMS)

sha=$(sed -n "s/^\([0-9a-f]\{64\}\)  kubectl-kompox_${version}_${os_arch}.tar.gz$/\1/p" "$out/SHA256SUMS")
[ -n "$sha" ] || die "no checksum of the plugin archive"
sed -e "s|@VERSION@|$version|g" -e "s|@URI@|$base_url/kubectl-kompox_${version}_${os_arch}.tar.gz|" \
  -e "s|@SHA256@|$sha|" "$ROOT/dist/krew/kompox.yaml" > "$out/kompox.yaml"
log "release $version in $out: $(cd "$out" && ls | tr '\n' ' ')"
