#!/usr/bin/env bash
# Container images for the real node, built on this machine with no registry: each is an OCI
# archive (hack/oci-image.py) in ${KOMPOX_CACHE}/images, imported into the node's containerd
# under the name a Pod spec uses. See hack/README.md, "Images".
#
#   hack/images.sh build [IMAGE]...  build the archives (all, or those named: pause busybox kompox
#                                 traefik postgres gitea) that are missing or out of date
#                                 (Kompox's image takes a release build of the servers for musl)
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
# install_const <NAME>: the string constant NAME of cli/src/install/objects.rs (one home for the image
# names `kubectl kompox install` puts in its Deployments).
install_const() {
  sed -n "s/^pub const $1: &str = \"\([^\"]*\)\";/\1/p" "$ROOT/cli/src/install/objects.rs"
}
# What each image is called in Pod specs.
PAUSE=registry.k8s.io/pause:3.10.1
KOMPOX=$(install_const DEFAULT_IMAGE)
TRAEFIK=$(install_const TRAEFIK_IMAGE)
[ -n "$KOMPOX" ] && [ -n "$TRAEFIK" ] || die "cannot read DEFAULT_IMAGE and TRAEFIK_IMAGE from cli/src/install/objects.rs"
MUSL=x86_64-unknown-linux-musl
# The musl release build has a target dir of its own, in the cache outside the checkout, so a
# fresh clone on the same machine (CI's) reuses the compiled dependencies and rebuilds only
# Kompox's own crates (cargo keys path crates by their place in the workspace, not by the
# checkout's path). One dir per toolchain (`rustc -vV`): a new toolchain rebuilds everything
# anyway, so the dirs of other toolchains are removed. Sharing target/ with the debug build
# would not save anything (other profile, other target).
musl_target_dir() {
  if [ -n "${KOMPOX_MUSL_TARGET_DIR:-}" ]; then echo "$KOMPOX_MUSL_TARGET_DIR"; return; fi
  local key d
  key=$(rustc -vV | sha256sum | cut -c1-12)
  for d in "$KOMPOX_CACHE"/rust/musl-*; do
    [ -d "$d" ] && [ "$d" != "$KOMPOX_CACHE/rust/musl-$key" ] && rm -rf "$d"
  done
  echo "$KOMPOX_CACHE/rust/musl-$key"
}
# The samples/gitea images (hack/README.md "Images"): their names as the compose file writes
# them; a tag must be what the image holds (checked where each is built).
GITEA_COMPOSE=$ROOT/samples/gitea/compose.yml
compose_image() { # compose_image <service>: the image: of that service in samples/gitea
  awk -v svc="  $1:" '$0 == svc { on = 1; next } on && /^  [^ ]/ { on = 0 }
    on && $1 == "image:" { print $2; exit }' "$GITEA_COMPOSE"
}
# normalize <name>: the full reference containerd's CRI resolves a short Docker name to.
normalize() {
  local n=$1
  if [[ $n != */* ]]; then
    n=docker.io/library/$n
  else
    case ${n%%/*} in *.*|*:*|localhost) ;; *) n=docker.io/$n ;; esac
  fi
  echo "$n"
}
# busybox: the renderer's init container image (core/src/render/mod.rs SUBPATH_INIT_IMAGE).
BUSYBOX=$(normalize "$(sed -n 's/^pub const SUBPATH_INIT_IMAGE: &str = "\([^"]*\)";/\1/p' "$ROOT/core/src/render/mod.rs")")
[ "$BUSYBOX" != docker.io/library/ ] || die "cannot read SUBPATH_INIT_IMAGE from core/src/render/mod.rs"
GITEA=$(normalize "$(compose_image gitea)")
POSTGRES=$(normalize "$(compose_image postgres)")

# deb <package> [<version>]: the path of the package's .deb (Debian's, via apt-get download),
# cached (any cached version unless one is asked for).
deb() {
  mkdir -p "$DEBS"
  local f want=$1 glob="$1_*.deb"
  if [ -n "${2:-}" ]; then want="$1=$2"; glob="$1_${2//:/%3a}_*.deb"; fi
  f=$(find "$DEBS" -maxdepth 1 -name "$glob" | head -n1)
  if [ -z "$f" ]; then
    (cd "$DEBS" && { apt-get download "$want" > /dev/null 2>&1 || { apt-get update -qq && apt-get download "$want" > /dev/null; }; })
    f=$(find "$DEBS" -maxdepth 1 -name "$glob" | head -n1)
  fi
  [ -n "$f" ] || die "apt-get download $1 gave no .deb"
  echo "$f"
}

# debian_root <root> <package>...: the packages and what they depend on (Depends and
# Pre-Depends, first alternatives, no Recommends: apt's own choice for an empty system), as
# Debian builds them, unpacked into <root>; no maintainer script runs (the image's entrypoint
# does what they would). Prints the packages' names and versions, the image's bill of materials.
debian_root() {
  local root=$1; shift
  local status list p v f
  status=$(mktemp)
  list=$(apt-get install -s -qq --no-install-recommends -o Dir::State::status="$status" \
    -o Debug::NoLocking=1 "$@" 2> /dev/null | awk '$1 == "Inst" { print $2, substr($3, 2) }')
  rm -f "$status"
  [ -n "$list" ] || die "apt-get cannot resolve $*: run apt-get update"
  while read -r p v; do
    f=$(deb "$p" "$v")
    dpkg-deb -x "$f" "$root"
  done <<< "$list"
  # The dynamic linker's cache (ldconfig would run from libc-bin's trigger).
  ldconfig -r "$root" 2> /dev/null || true
  echo "$list"
}

# content_key <input>...: a digest of the inputs' contents (a file's bytes, else the word itself)
# and of this script and oci-image.py. Keys, not mtimes: a clean clone (CI's) has new mtimes but
# the same contents, and takes the cached archives as they are.
content_key() {
  local f
  for f in "$@" "$here/images.sh" "$here/oci-image.py"; do
    if [ -f "$f" ]; then sha256sum < "$f"; else printf '%s\n' "$f"; fi
  done | sha256sum | cut -c1-64
}

# fresh <archive> <input>...: the archive exists and was built from these inputs
# (<archive>.key, written by image()).
FRESH_KEY=
fresh() {
  local out=$1; shift
  FRESH_KEY=$(content_key "$@")
  [ -s "$out" ] && [ "$(cat "$out.key" 2> /dev/null)" = "$FRESH_KEY" ]
}

image() { # image <archive> <name> <rootfs> <oci-image.py args…>
  local out=$1 name=$2 root=$3; shift 3
  rm -f "$out.key"
  python3 "$here/oci-image.py" --name "$name" --rootfs "$root" --out "$out" "$@" > /dev/null
  [ -z "$FRESH_KEY" ] || echo "$FRESH_KEY" > "$out.key"
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
  local out=$IMAGES/busybox.tar pkg ver
  pkg=$(deb busybox-static)
  # The tag names the version: Debian's 1:1.35.0-4+deb12u1 is busybox:1.35.
  ver=$(dpkg-deb -f "$pkg" Version | sed 's/^[0-9]*://; s/^\([0-9]*\.[0-9]*\).*/\1/')
  [ "${BUSYBOX##*:}" = "$ver" ] ||
    die "the renderer's init image is $BUSYBOX, but Debian's busybox-static is $ver: keep them equal"
  fresh "$out" "$pkg" "$BUSYBOX" && return 0
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
  # The image is keyed by the content of what goes into it (the servers' crates, the lock file,
  # the Containerfile, the toolchain, this script): a clean clone of the same sources (CI's)
  # takes the image as it is, without a release build (cargo would rebuild the workspace's
  # crates, as their files are new to it).
  local key
  key=$({
    rustc -vV
    cd "$ROOT" && git ls-files -z -- Cargo.toml Cargo.lock Containerfile core serve cluster \
      apiserver webhook controller hack/images.sh hack/oci-image.py | LC_ALL=C sort -z |
      xargs -0 sha256sum
  } | sha256sum | cut -c1-64)
  if [ -s "$out" ] && [ "$(cat "$out.key" 2> /dev/null)" = "$key" ]; then
    log "image $KOMPOX: up to date with these sources"
    return 0
  fi
  FRESH_KEY=$key
  rustup target list --installed 2> /dev/null | grep -qx "$MUSL" || rustup target add "$MUSL" > /dev/null
  command -v musl-gcc > /dev/null || die "Kompox's static binaries need musl-gcc: apt-get install musl-tools"
  local t=$SECONDS pkgs=() b MUSL_TARGET_DIR
  MUSL_TARGET_DIR=$(musl_target_dir)
  mkdir -p "$MUSL_TARGET_DIR"
  # Only the binaries the image holds (-p alone would also build each package's benchmarks).
  for b in "${bins[@]}"; do pkgs+=(-p "$b" --bin "$b"); done
  (cd "$ROOT" && CARGO_TARGET_DIR=$MUSL_TARGET_DIR cargo build --release --locked --target "$MUSL" "${pkgs[@]}" >&2)
  local rel=$MUSL_TARGET_DIR/$MUSL/release
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
  "$here/build-tools.sh" traefik > /dev/null
  [ -x "$bin" ] || die "no traefik binary after hack/build-tools.sh traefik"
  want=$(sed -n 's|^require github.com/traefik/traefik/v3 \(v[0-9.]*\)$|\1|p' "$here/tools/traefik/go.mod")
  [ "${TRAEFIK##*:}" = "$want" ] ||
    die "cli/src/install/objects.rs TRAEFIK_IMAGE is $TRAEFIK but hack/tools/traefik pins $want: keep them equal"
  fresh "$out" "$bin" "$TRAEFIK" && return 0
  local root; root=$(mktemp -d)
  mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/tmp"
  chmod 1777 "$root/tmp"
  install -m 0755 "$bin" "$root/usr/local/bin/traefik"
  [ ! -s /etc/ssl/certs/ca-certificates.crt ] || cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
  image "$out" "$TRAEFIK" "$root" --entrypoint '["/usr/local/bin/traefik"]'
  rm -rf "$root"
}

# The version of the Debian package (apt's candidate) an image is built from.
debian_version() {
  apt-cache policy "$1" 2> /dev/null | awk '$1 == "Candidate:" { print $2 }'
}

# Postgres from Debian's packages, under the name samples/gitea gives it. The tag must be the
# major Debian ships (bookworm: 15): the sample names the major it really runs. The entrypoint
# (hack/images/postgres-entrypoint.sh) keeps the Docker library image's environment contract.
postgres() {
  local out=$IMAGES/postgres.tar major ver
  ver=$(debian_version postgresql)
  major=${ver%%+*}
  [ -n "$major" ] || die "apt-cache knows no postgresql package: run apt-get update"
  [ "${POSTGRES##*:}" = "$major" ] ||
    die "samples/gitea names $POSTGRES, but Debian's postgresql is $major: name the major it runs (postgres:$major)"
  fresh "$out" "$here/images/postgres-entrypoint.sh" "$POSTGRES" "$ver" && return 0
  local root t=$SECONDS; root=$(mktemp -d)
  debian_root "$root" "postgresql-$major" dash bash coreutils util-linux sed grep > "$IMAGES/postgres.packages"
  install -D -m 0755 "$here/images/postgres-entrypoint.sh" "$root/usr/local/bin/docker-entrypoint.sh"
  mkdir -p "$root/var/lib/postgresql/data" "$root/var/run/postgresql" "$root/tmp"
  chmod 1777 "$root/tmp"
  printf 'root:x:0:0:root:/root:/bin/bash\npostgres:x:999:999::/var/lib/postgresql:/bin/bash\n' > "$root/etc/passwd"
  printf 'root:x:0:\npostgres:x:999:\n' > "$root/etc/group"
  image "$out" "$POSTGRES" "$root" --entrypoint '["/usr/local/bin/docker-entrypoint.sh"]' --cmd '["postgres"]' \
    --env "PATH=/usr/lib/postgresql/$major/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --env LANG=C.UTF-8 --env PGDATA=/var/lib/postgresql/data --expose 5432/tcp \
    --owner /var/lib/postgresql=999:999 --owner /var/run/postgresql=999:999
  rm -rf "$root"
  log "image $POSTGRES from Debian's postgresql-$major ($(wc -l < "$IMAGES/postgres.packages") packages) in $((SECONDS - t))s"
}

# Gitea as upstream's image runs it (the module's Dockerfile and docker/root: its entrypoint,
# start-up script and app.ini template, unchanged), with git and the tools those scripts use
# from Debian instead of Alpine, and the gitea binary hack/build-tools.sh built from the pinned
# module. The tag must be the pin's version. Not in it: upstream's OpenSSH service (s6 runs
# it there; here only Gitea runs), so no SSH on port 22.
gitea() {
  local out=$IMAGES/gitea.tar bin=$KOMPOX_BIN/gitea want src
  "$here/build-tools.sh" gitea > /dev/null
  [ -x "$bin" ] && [ -x "$KOMPOX_BIN/environment-to-ini" ] ||
    die "no gitea binary after hack/build-tools.sh gitea"
  want=$(sed -n 's|^require code.gitea.io/gitea v\([0-9.]*\)$|\1|p' "$here/tools/gitea/go.mod")
  [ "${GITEA##*:}" = "$want" ] ||
    die "samples/gitea names $GITEA but hack/tools/gitea pins $want: keep them equal"
  fresh "$out" "$bin" "$KOMPOX_BIN/environment-to-ini" "$here/images/su-exec" "$GITEA" && return 0
  src=$(cd "$here/tools/gitea" && GOFLAGS=-mod=readonly go list -m -f '{{.Dir}}' code.gitea.io/gitea)
  local root t=$SECONDS; root=$(mktemp -d)
  debian_root "$root" git bash dash gettext-base coreutils util-linux sed grep mawk findutils \
    > "$IMAGES/gitea.packages"
  # Upstream's docker/root (entrypoint, s6 service scripts, app.ini template), as its Dockerfile copies it.
  cp -r "$src/docker/root/." "$root/"
  chmod -R u+w "$root"
  chmod 0755 "$root/usr/bin/entrypoint" "$root/usr/local/bin/gitea" "$root"/etc/s6/*/*
  # The alternative mawk's maintainer script would register.
  ln -sf mawk "$root/usr/bin/awk"
  install -m 0755 "$here/images/su-exec" "$root/usr/local/bin/su-exec"
  install -m 0755 "$KOMPOX_BIN/environment-to-ini" "$root/usr/local/bin/environment-to-ini"
  mkdir -p "$root/app/gitea" "$root/data" "$root/tmp"
  chmod 1777 "$root/tmp"
  install -m 0755 "$bin" "$root/app/gitea/gitea"
  # No bindata: the templates, options (locales, licences, gitignores) and public/ files Gitea
  # reads from its static root, from the same module.
  cp -r "$src/templates" "$src/options" "$src/public" "$root/app/gitea/"
  chmod -R u+w,go-w "$root/app/gitea"
  printf 'root:x:0:0:root:/root:/bin/bash\ngit:x:1000:1000::/data/git:/bin/bash\n' > "$root/etc/passwd"
  printf 'root:x:0:\ngit:x:1000:\n' > "$root/etc/group"
  image "$out" "$GITEA" "$root" --entrypoint '["/usr/bin/entrypoint"]' --cmd '["/etc/s6/gitea/run"]' \
    --workdir /etc/s6/gitea --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env USER=git --env GITEA_CUSTOM=/data/gitea --env GITEA__server__STATIC_ROOT_PATH=/app/gitea \
    --expose 3000/tcp --owner /app/gitea=1000:1000
  rm -rf "$root"
  log "image $GITEA (gitea $want, git from Debian: $(wc -l < "$IMAGES/gitea.packages") packages) in $((SECONDS - t))s"
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
  build)
    shift
    mkdir -p "$IMAGES"
    [ $# -gt 0 ] || set -- pause busybox kompox traefik postgres gitea
    for i in "$@"; do
      case $i in
        pause|busybox|kompox|traefik|postgres|gitea) "$i" ;;
        *) die "build: no image $i (pause busybox kompox traefik postgres gitea)" ;;
      esac
    done ;;
  import-node) import_node ;;
  list)
    echo "$PAUSE $IMAGES/pause.tar"; echo "$BUSYBOX $IMAGES/busybox.tar"
    echo "$TRAEFIK $IMAGES/traefik.tar"; echo "$KOMPOX $IMAGES/kompox.tar"
    echo "$POSTGRES $IMAGES/postgres.tar"; echo "$GITEA $IMAGES/gitea.tar" ;;
  containerfile-spec) containerfile_spec ;;
  *) echo "usage: $0 build|import-node|list|containerfile-spec" >&2; exit 2 ;;
esac
