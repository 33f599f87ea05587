#!/usr/bin/env python3
"""Unpacks Debian packages (.deb) into a prefix without dpkg: a .deb is an `ar` archive whose
data.tar.{xz,zst,gz} holds the files; DEST/usr/... then serves as a CMAKE_PREFIX_PATH and
LD_LIBRARY_PATH. Absolute symlinks are re-pointed into DEST. For machines that have a compiler but
none of our Debian libraries (scripts/gpu_check.sh). usage: unpack_debs.py DEB_DIR DEST"""
import io, os, sys, tarfile


def ar_members(data):
    if data[:8] != b"!<arch>\n":
        raise ValueError("not an ar archive")
    pos = 8
    while pos + 60 <= len(data):
        header = data[pos:pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        yield name, data[pos + 60:pos + 60 + size]
        pos += 60 + size + (size % 2)


def unpack(deb, dest):
    with open(deb, "rb") as f:
        members = dict(ar_members(f.read()))
    name = next((n for n in members if n.startswith("data.tar")), None)
    if name is None:
        raise ValueError(f"{deb}: no data.tar member")
    if name.endswith(".zst"):
        raise ValueError(f"{deb}: zstd-compressed data (Python's tarfile reads xz, gz, bz2)")
    with tarfile.open(fileobj=io.BytesIO(members[name])) as tar:
        for m in tar.getmembers():
            target = os.path.normpath(os.path.join(dest, m.name))
            if not target.startswith(os.path.abspath(dest)):
                raise ValueError(f"{deb}: member {m.name} escapes the prefix")
            if m.issym() and m.linkname.startswith("/"):
                m.linkname = os.path.relpath(os.path.join(dest, m.linkname.lstrip("/")), os.path.dirname(target))
            if os.path.lexists(target) and not m.isdir():
                os.remove(target)
            tar.extract(m, dest, set_attrs=False)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, dest = sys.argv[1], os.path.abspath(sys.argv[2])
    debs = sorted(f for f in os.listdir(src) if f.endswith(".deb"))
    if not debs:
        sys.exit(f"unpack_debs: no .deb files in {src} (scripts/gpu_deps.sh downloads them)")
    os.makedirs(dest, exist_ok=True)
    for d in debs:
        unpack(os.path.join(src, d), dest)
    print(f"unpack_debs: {len(debs)} packages into {dest}")


if __name__ == "__main__":
    main()
