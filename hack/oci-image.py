#!/usr/bin/env python3
"""Builds an OCI image archive (an OCI image layout in a tar) from a directory tree, with no
registry and no container engine: what `ctr images import` (and the real node's containerd)
loads. One layer, reproducible (sorted entries, mtime 0, numeric owners, gzip without a
timestamp), so the same inputs give the same digests.

  hack/oci-image.py --name docker.io/library/busybox:1.35 --rootfs DIR --out busybox.tar \
      [--user 65532:65532] [--entrypoint '["/bin/sh"]'] [--cmd '[...]'] [--env K=V]... \
      [--workdir /] [--expose 8080/tcp]... [--owner PATH=UID:GID]... [--label K=V]...

Files in the layer belong to root (0:0) unless --owner names their path (the path and what is
below it). Modes come from the tree. Prints the manifest digest.
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import stat
import sys
import tarfile


def die(msg):
    print(f"oci-image: {msg}", file=sys.stderr)
    sys.exit(1)


def owners_for(rel, owners):
    """The (uid, gid) of the longest --owner prefix covering rel, else root."""
    best = None
    for path, ids in owners:
        if rel == path or rel.startswith(path + "/"):
            if best is None or len(path) > len(best[0]):
                best = (path, ids)
    return best[1] if best else (0, 0)


def layer_tar(rootfs, owners):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        entries = []
        for dirpath, dirnames, filenames in os.walk(rootfs):
            dirnames.sort()
            for name in sorted(dirnames + filenames):
                entries.append(os.path.join(dirpath, name))
        entries.sort(key=lambda p: os.path.relpath(p, rootfs))
        for path in entries:
            rel = os.path.relpath(path, rootfs)
            info = tar.gettarinfo(path, arcname=rel)
            st = os.lstat(path)
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                die(f"{rel}: only files, directories and symbolic links go into a layer")
            info.uid, info.gid = owners_for("/" + rel, owners)
            info.uname = info.gname = ""
            info.mtime = 0
            info.pax_headers = {}
            if info.isreg():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    return buf.getvalue()


def gz(data):
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=6) as g:
        g.write(data)
    return out.getvalue()


def blob(data):
    return "sha256:" + hashlib.sha256(data).hexdigest(), data


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", required=True, help="the image reference it is imported as")
    p.add_argument("--rootfs", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--user", default="")
    p.add_argument("--entrypoint", default="null", help="JSON array or null")
    p.add_argument("--cmd", default="null", help="JSON array or null")
    p.add_argument("--env", action="append", default=[])
    p.add_argument("--workdir", default="")
    p.add_argument("--expose", action="append", default=[])
    p.add_argument("--label", action="append", default=[])
    p.add_argument("--owner", action="append", default=[], help="PATH=UID:GID")
    a = p.parse_args()

    if not os.path.isdir(a.rootfs):
        die(f"--rootfs {a.rootfs}: not a directory")
    owners = []
    for o in a.owner:
        path, _, ids = o.partition("=")
        uid, _, gid = ids.partition(":")
        if not path.startswith("/") or not uid.isdigit() or not gid.isdigit():
            die(f"--owner {o!r}: want /PATH=UID:GID")
        owners.append((path.rstrip("/") or "/", (int(uid), int(gid))))
    try:
        entrypoint = json.loads(a.entrypoint)
        cmd = json.loads(a.cmd)
    except json.JSONDecodeError as e:
        die(f"--entrypoint/--cmd: not JSON: {e}")
    for name, v in (("--entrypoint", entrypoint), ("--cmd", cmd)):
        if v is not None and not (isinstance(v, list) and all(isinstance(s, str) for s in v)):
            die(f"{name}: want a JSON array of strings or null")

    raw = layer_tar(a.rootfs, owners)
    diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    layer_digest, layer = blob(gz(raw))

    config = {"Env": a.env or ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}
    if a.user:
        config["User"] = a.user
    if entrypoint is not None:
        config["Entrypoint"] = entrypoint
    if cmd is not None:
        config["Cmd"] = cmd
    if a.workdir:
        config["WorkingDir"] = a.workdir
    if a.expose:
        config["ExposedPorts"] = {port: {} for port in a.expose}
    if a.label:
        config["Labels"] = dict(kv.partition("=")[::2] for kv in a.label)
    image_config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "hack/oci-image.py"}],
    }
    config_digest, config_bytes = blob(json.dumps(image_config, sort_keys=True, separators=(",", ":")).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": len(config_bytes),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": layer_digest,
                "size": len(layer),
            }
        ],
    }
    manifest_digest, manifest_bytes = blob(json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode())
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": len(manifest_bytes),
                "platform": {"architecture": "amd64", "os": "linux"},
                "annotations": {
                    "io.containerd.image.name": a.name,
                    "org.opencontainers.image.ref.name": a.name,
                },
            }
        ],
    }

    def add(tar, name, data):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))

    tmp = a.out + ".tmp"
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
        add(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add(tar, "index.json", json.dumps(index, sort_keys=True).encode())
        for digest, data in (
            (config_digest, config_bytes),
            (layer_digest, layer),
            (manifest_digest, manifest_bytes),
        ):
            add(tar, "blobs/sha256/" + digest.split(":", 1)[1], data)
    os.replace(tmp, a.out)
    print(manifest_digest)


if __name__ == "__main__":
    main()
