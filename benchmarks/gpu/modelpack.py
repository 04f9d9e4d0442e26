"""Pack a float16 sentence-transformers folder into one plain tar that is smaller than the folder, and back.

Standard library only (it runs on the device machine before anything is installed there).

``pack SRC_DIR OUT_TAR``: the tar holds ``<name>/...`` (every file of the folder) except that each
``*.safetensors`` file is stored as two byte planes, losslessly: ``<file>.lo`` (the even bytes, raw: the
low bytes of the float16 values, near random) and ``<file>.hi.gz`` (the odd bytes, gzip: sign, exponent and
top mantissa bits, which compress to about 70 %), plus ``modelpack.json`` with each original file's size and
SHA-256. The whole folder comes out about 14 % smaller than a plain tar of it.

``unpack TAR DEST_DIR``: extracts, interleaves the planes back, checks size and SHA-256 of every rebuilt file
(exit 1 on a mismatch) and prints the model folder's path.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path

MANIFEST = "modelpack.json"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def pack(src: Path, out: Path) -> None:
    src = src.resolve()
    if not (src / "modules.json").is_file():
        raise SystemExit(f"{src} is not a sentence-transformers folder (no modules.json)")
    name = src.name
    manifest: dict[str, dict[str, object]] = {}
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(p for p in src.rglob("*") if p.is_file()):
            rel = path.relative_to(src).as_posix()
            data = path.read_bytes()
            if path.suffix == ".safetensors":
                manifest[rel] = {"size": len(data), "sha256": _sha256(data)}
                _add(tar, f"{name}/{rel}.lo", data[0::2])
                _add(tar, f"{name}/{rel}.hi.gz", gzip.compress(data[1::2], compresslevel=6, mtime=0))
            else:
                _add(tar, f"{name}/{rel}", data)
        _add(tar, f"{name}/{MANIFEST}", json.dumps(manifest, indent=1).encode())


def unpack(tar_path: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tar_path) as tar:
        names = tar.getnames()
        top = {n.split("/", 1)[0] for n in names}
        if len(top) != 1:
            raise SystemExit(f"{tar_path}: expected one top folder, found {sorted(top)}")
        try:
            tar.extractall(dest, filter="data")
        except TypeError:  # Python without extraction filters
            tar.extractall(dest)
    folder = dest / top.pop()
    manifest = json.loads((folder / MANIFEST).read_text())
    for rel, want in manifest.items():
        lo_path, hi_path = folder / f"{rel}.lo", folder / f"{rel}.hi.gz"
        lo, hi = lo_path.read_bytes(), gzip.decompress(hi_path.read_bytes())
        if len(lo) + len(hi) != want["size"] or len(lo) - len(hi) not in (0, 1):
            raise SystemExit(f"{rel}: byte planes of {len(lo)} + {len(hi)} bytes do not make {want['size']}")
        buf = bytearray(want["size"])
        buf[0::2] = lo
        buf[1::2] = hi
        if _sha256(buf) != want["sha256"]:
            raise SystemExit(f"{rel}: SHA-256 mismatch after rebuilding")
        (folder / rel).write_bytes(buf)
        lo_path.unlink()
        hi_path.unlink()
        print(f"{rel}: {want['size']} bytes, sha256 OK", file=sys.stderr)
    (folder / MANIFEST).unlink()
    return folder


def main(argv: list[str]) -> None:
    if len(argv) != 3 or argv[0] not in ("pack", "unpack"):
        raise SystemExit("usage: modelpack.py pack SRC_DIR OUT_TAR | unpack TAR DEST_DIR")
    if argv[0] == "pack":
        pack(Path(argv[1]), Path(argv[2]))
    else:
        print(unpack(Path(argv[1]), Path(argv[2])))


if __name__ == "__main__":
    main(sys.argv[1:])
