#!/usr/bin/env bash
# Container images for the real node, built on this machine with no registry: each is an OCI
# archive (hack/oci-image.py) in ${KOMPOX_CACHE}/images, imported into the node's containerd
# under the name a Pod spec uses. See hack/README.md, "Images".
#
#   hack/images.sh build          build the archives that are missing or out of date (Kompox's
#                                 image takes a release build of the servers for musl)
#   hack/images.sh import-node    build the node's own images (pause, busybox) if needed, then
#                                 import every archive there is into the real node's containerd
#   hack/images.sh list           name and archive of each image
#   hack/images.sh containerfile-spec   what Containerfile puts in Kompox's image (binaries, dir, user, entrypoint)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/lib/common.sh
source "$here/lib/common.sh"

STATE=${KOMPOX_CLUSTER_DIR:-$KOMPOX_CACHE/cluster}
IMAGES=$KOMPOX_CACHE/images
DEBS=$KOMPOX_CACHE/debs
SOCK=$STATE/node/run/containerd.sock

ROOT=$(cd "$here/.." && pwd)
# install_const <NAME>: the string constant NAME of cli/src/install.rs (one home for the image
# names `kubectl kompox install` puts in its Deployments).
install_const() {
  sed -n "s/^pub const $1: &str = \"\([^\"]*\)\";/\1/p" "$ROOT/cli/src/install.rs"
}
# What each image is called in Pod specs.
PAUSE=registry.k8s.io/pause:3.10.1
BUSYBOX=docker.io/library/busybox:1.35
KOMPOX=$(install_const DEFAULT_IMAGE)
TRAEFIK=$(install_const TRAEFIK_IMAGE)
[ -n "$KOMPOX" ] && [ -n "$TRAEFIK" ] || die "cannot read DEFAULT_IMAGE and TRAEFIK_IMAGE from cli/src/install.rs"
MUSL=x86_64-unknown-linux-musl
# The musl release build has a target dir of its own, kept between runs: sharing target/ with
# the debug and host builds would not save anything (other profile, other target) and `cargo
# clean` of one would take the other.
MUSL_TARGET_DIR=${KOMPOX_MUSL_TARGET_DIR:-$ROOT/target/musl}

# deb <package>: the path of the package's .deb (Debian's, via apt-get download), cached.
deb() {
  mkdir -p "$DEBS"
  local f
  f=$(find "$DEBS" -maxdepth 1 -name "$1_*.deb" | head -n1)
  if [ -z "$f" ]; then
    (cd "$DEBS" && { apt-get download "$1" > /dev/null 2>&1 || { apt-get update -qq && apt-get download "$1" > /dev/null; }; })
    f=$(find "$DEBS" -maxdepth 1 -name "$1_*.deb" | head -n1)
  fi
  [ -n "$f" ] || die "apt-get download $1 gave no .deb"
  echo "$f"
}

# fresh <archive> <input>...: the archive exists and is newer than every input (and this script).
fresh() {
  local out=$1 f; shift
  [ -s "$out" ] || return 1
  for f in "$@" "$here/images.sh" "$here/oci-image.py"; do [ "$out" -nt "$f" ] || return 1; done
}

image() { # image <archive> <name> <rootfs> <oci-image.py args…>
  local out=$1 name=$2 root=$3; shift 3
  python3 "$here/oci-image.py" --name "$name" --rootfs "$root" --out "$out" "$@" > /dev/null
  log "image $name: $(du -h "$out" | cut -f1)"
}

pause() {
  local out=$IMAGES/pause.tar
  [ -x "$KOMPOX_BIN/pause" ] || die "no pause binary: run KOMPOX_REAL_NODE=1 hack/build-tools.sh"
  fresh "$out" "$KOMPOX_BIN/pause" && return 0
  local root; root=$(mktemp -d)
  install -m 0755 "$KOMPOX_BIN/pause" "$root/pause"
  image "$out" "$PAUSE" "$root" --entrypoint '["/pause"]' --user 65535:65535
  rm -rf "$root"
}

# busybox from Debian's busybox-static: one static binary and a link per applet.
busybox() {
  local out=$IMAGES/busybox.tar pkg
  pkg=$(deb busybox-static)
  fresh "$out" "$pkg" && return 0
  local root x; root=$(mktemp -d); x=$(mktemp -d)
  dpkg-deb -x "$pkg" "$x"
  mkdir -p "$root"/{bin,etc,tmp,root,home,var/tmp}
  chmod 1777 "$root/tmp" "$root/var/tmp"
  install -m 0755 "$x/bin/busybox" "$root/bin/busybox"
  local applet
  for applet in $("$root/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n' > "$root/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' > "$root/etc/group"
  image "$out" "$BUSYBOX" "$root" --cmd '["sh"]'
  rm -rf "$root" "$x"
}

# containerfile_spec: what the Containerfile's final stage puts in Kompox's image, one
# "key value" a line: bin <name> (each binary it copies), dir <where>, user <uid:gid>,
# entrypoint <JSON>. The Containerfile is the recipe; the image here follows it.
containerfile_spec() {
  local cf=$ROOT/Containerfile
  grep -o 'target/release/kompox-[a-z-]*' "$cf" | sed 's|.*/|bin |'
  awk '$1 == "COPY" && $2 == "--from=build" { print "dir " $4 }' "$cf" | tail -n1
  awk '$1 == "USER" { print "user " $2 }' "$cf" | tail -n1
  sed -n 's/^ENTRYPOINT /entrypoint /p' "$cf" | tail -n1
}

# Kompox's image, as the Containerfile describes it, from static musl binaries (no libc in
# the image: where the Containerfile's base is distroless/cc, here it is scratch plus the
# files a nonroot image needs).
kompox() {
  local out=$IMAGES/kompox.tar spec bins=() dir user entrypoint key value
  spec=$(containerfile_spec)
  while read -r key value; do
    case $key in
      bin) bins+=("$value") ;;
      dir) dir=$value ;;
      user) user=$value ;;
      entrypoint) entrypoint=$value ;;
    esac
  done <<< "$spec"
  [ ${#bins[@]} -gt 0 ] && [ -n "${dir:-}" ] && [ -n "${user:-}" ] && [ -n "${entrypoint:-}" ] ||
    die "cannot read the binaries, COPY destination, USER and ENTRYPOINT from $ROOT/Containerfile"
  rustup target list --installed 2> /dev/null | grep -qx "$MUSL" || rustup target add "$MUSL" > /dev/null
  command -v musl-gcc > /dev/null || die "Kompox's static binaries need musl-gcc: apt-get install musl-tools"
  local t=$SECONDS pkgs=() b
  # Only the binaries the image holds (-p alone would also build each package's benchmarks).
  for b in "${bins[@]}"; do pkgs+=(-p "$b" --bin "$b"); done
  (cd "$ROOT" && CARGO_TARGET_DIR=$MUSL_TARGET_DIR cargo build --release --locked --target "$MUSL" "${pkgs[@]}" >&2)
  local rel=$MUSL_TARGET_DIR/$MUSL/release
  fresh "$out" "${bins[@]/#/$rel/}" "$ROOT/Containerfile" && return 0
  log "built Kompox's musl binaries in $((SECONDS - t))s"
  local root; root=$(mktemp -d)
  mkdir -p "$root/$dir" "$root/etc/ssl/certs" "$root/tmp" "$root/home/nonroot"
  chmod 1777 "$root/tmp"
  for b in "${bins[@]}"; do install -m 0755 "$rel/$b" "$root/$dir/$b"; done
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$root/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' > "$root/etc/group"
  [ ! -s /etc/ssl/certs/ca-certificates.crt ] || cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
  image "$out" "$KOMPOX" "$root" --user "$user" --entrypoint "$entrypoint" --owner "/home/nonroot=65532:65532"
  rm -rf "$root"
}

# Traefik, the ingress controller install runs: the binary hack/build-tools.sh built from the
# pinned module (hack/tools/traefik), named as install names it. The tag must be the pin's
# version, so the image is what its name says.
traefik() {
  local out=$IMAGES/traefik.tar bin=$KOMPOX_BIN/traefik want
  [ -x "$bin" ] || die "no traefik binary: run KOMPOX_REAL_NODE=1 hack/build-tools.sh"
  want=$(sed -n 's|^require github.com/traefik/traefik/v3 \(v[0-9.]*\)$|\1|p' "$here/tools/traefik/go.mod")
  [ "${TRAEFIK##*:}" = "$want" ] ||
    die "cli/src/install.rs TRAEFIK_IMAGE is $TRAEFIK but hack/tools/traefik pins $want: keep them equal"
  fresh "$out" "$bin" "$ROOT/cli/src/install.rs" && return 0
  local root; root=$(mktemp -d)
  mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/tmp"
  chmod 1777 "$root/tmp"
  install -m 0755 "$bin" "$root/usr/local/bin/traefik"
  [ ! -s /etc/ssl/certs/ca-certificates.crt ] || cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
  image "$out" "$TRAEFIK" "$root" --entrypoint '["/usr/local/bin/traefik"]'
  rm -rf "$root"
}

build_node() {
  mkdir -p "$IMAGES"
  pause
  busybox
}

# import_node: the node's own images (built if missing), then every archive there is (Kompox's
# once `build` made it).
import_node() {
  build_node
  [ -S "$SOCK" ] || die "no containerd at $SOCK: start the real node (KOMPOX_REAL_NODE=1 hack/cluster.sh up)"
  local f
  local f out
  for f in "$IMAGES"/*.tar; do
    out=$("$KOMPOX_BIN/ctr" --address "$SOCK" --namespace k8s.io images import "$f" 2>&1) ||
      die "importing $f: $out"
  done
}

case "${1:-}" in
  build) build_node; kompox; traefik ;;
  import-node) import_node ;;
  list)
    echo "$PAUSE $IMAGES/pause.tar"; echo "$BUSYBOX $IMAGES/busybox.tar"
    echo "$TRAEFIK $IMAGES/traefik.tar"; echo "$KOMPOX $IMAGES/kompox.tar" ;;
  containerfile-spec) containerfile_spec ;;
  *) echo "usage: $0 build|import-node|list|containerfile-spec" >&2; exit 2 ;;
esac
