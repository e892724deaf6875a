"""Split volumes: a finished bundle cut into ``NAME.tar.000``, ``.001``, ... and joined back.

Standard library only.  Beside the volumes sits ``NAME.volumes.json`` (the
bundle's file name, total size and sha256, and each volume's name, size and
sha256), signed like the tar as ``NAME.volumes.json.asc``; the tar's own
signature ``NAME.tar.asc`` is kept too, so the joined tar verifies as usual.
Joining checks the list's signature and every volume before one byte is used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from wheelferry.errors import UsageError, VerificationError
from wheelferry.files import FILE_CHUNK, SHA256_HEX, atomic_path
from wheelferry.jsontypes import JSONObject
from wheelferry.offline.approvals import Tally, signature_files, signatures_check
from wheelferry.offline.gpg import signature_check
from wheelferry.offline.openpgp import MAX_SIGNATURE_FILE

FORMAT = "wheelferry-volumes"
FORMAT_VERSION = 1
LIST_SUFFIX = ".volumes.json"
# shared/DESIGN.md: K, M, G, T are powers of 1000, Ki, Mi, Gi, Ti powers of 1024 (an optional
# B after either); fat32 is the largest file FAT32 holds, 4 GiB - 1 byte.
_SIZE = re.compile(r"^\s*(\d+)\s*(?:([KMGT])(i?)B?|B?)\s*$", re.IGNORECASE)
_POWERS = {"K": 1, "M": 2, "G": 3, "T": 4}
FAT32 = (4 << 30) - 1
_VOLUME = re.compile(r"^(?P<tar>.+\.tar(?:\.gz|\.zst)?)\.(?P<n>\d{3,})$")
_TAR = re.compile(r"\.tar(?:\.gz|\.zst)?$")
# The list is read before (with --allow-unsigned: instead of) its signature is judged: a list
# of 100,000 volumes is about 15 MB, more than any medium needs.
MAX_LIST_FILE = 16 << 20
MAX_VOLUMES = 100_000


@dataclass(frozen=True)
class Volume:
    """One piece of a split bundle."""

    name: str
    size: int
    sha256: str

    def to_json(self) -> JSONObject:
        return {"name": self.name, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True)
class VolumeSet:
    """A bundle's volume list: what the joined tar is and the volumes that make it."""

    bundle: str  # the tar's file name, e.g. demo.tar
    size: int
    sha256: str
    volume_size: int
    volumes: tuple[Volume, ...]

    def to_json(self) -> JSONObject:
        return {"format": FORMAT, "format-version": FORMAT_VERSION, "bundle": self.bundle,
                "size": self.size, "sha256": self.sha256, "volume-size": self.volume_size,
                "volumes": [v.to_json() for v in self.volumes]}

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n"


def parse_size(text: str) -> int:
    """``4G`` (10**9), ``4Gi`` (2**30), ``fat32`` (4 GiB - 1) or plain bytes -> bytes; at least 1 KiB."""
    if str(text).strip().lower() == "fat32":
        return FAT32
    m = _SIZE.match(str(text))
    if not m:
        raise UsageError(f"--split-size {text!r} is not a size",
                         hint="write bytes, a number with K, M, G (powers of 1000) or Ki, Mi, Gi "
                              "(powers of 1024), or fat32 for FAT32 media")
    unit = m.group(2)
    size = int(m.group(1)) * ((1024 if m.group(3) else 1000) ** _POWERS[unit.upper()] if unit else 1)
    if size < 1024:
        raise UsageError(f"--split-size {text!r} is smaller than 1K",
                         hint="volumes are meant for media such as DVDs or USB sticks: e.g. 4G")
    return size


def list_path_for(tar_name: str, directory: Path) -> Path:
    """Where the volume list of bundle file *tar_name* lives: ``NAME.volumes.json``."""
    return directory / f"{_TAR.sub('', tar_name)}{LIST_SUFFIX}"


def _write_atomic(path: Path, chunks: Iterable[bytes]) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        for chunk in chunks:
            f.write(chunk)


def _pieces(f: IO[bytes], limit: int) -> Iterator[bytes]:
    left = limit
    while left:
        data = f.read(min(FILE_CHUNK, left))
        if not data:
            return
        left -= len(data)
        yield data


def _copy_volume(f: IO[bytes], path: Path, limit: int, *digests: hashlib._Hash) -> int:
    """Copy up to *limit* bytes of *f* into *path* atomically, feeding every digest; return the size."""
    size = 0

    def hashed() -> Iterator[bytes]:
        nonlocal size
        for data in _pieces(f, limit):
            for d in digests:
                d.update(data)
            size += len(data)
            yield data

    _write_atomic(path, hashed())
    return size


def split_bundle(tar_path: Path, volume_size: int) -> tuple[Path, VolumeSet]:
    """Cut *tar_path* into volumes of at most *volume_size* bytes; write them and the list."""
    tar_path = Path(tar_path)
    total = tar_path.stat().st_size
    count = max(1, -(-total // volume_size))
    width = max(3, len(str(count - 1)))
    whole = hashlib.sha256()
    volumes: list[Volume] = []
    written: list[Path] = []
    try:
        with open(tar_path, "rb") as f:
            for i in range(count):
                path = tar_path.with_name(f"{tar_path.name}.{i:0{width}d}")
                digest = hashlib.sha256()
                size = _copy_volume(f, path, volume_size, digest, whole)
                written.append(path)
                volumes.append(Volume(path.name, size, digest.hexdigest()))
        vset = VolumeSet(tar_path.name, total, whole.hexdigest(), volume_size, tuple(volumes))
        list_path = list_path_for(tar_path.name, tar_path.parent)
        _write_atomic(list_path, [vset.dumps().encode()])
    except BaseException:
        for p in written:
            p.unlink(missing_ok=True)
        raise
    return list_path, vset


def is_split(path: Path) -> bool:
    """True if *path* names a volume list or a volume (``NAME.tar.000``) rather than a tar."""
    name = Path(path).name
    return name.endswith(LIST_SUFFIX) or bool(_VOLUME.match(name))


def _list_of(path: Path) -> Path:
    path = Path(path)
    if path.name.endswith(LIST_SUFFIX):
        return path
    m = _VOLUME.match(path.name)
    assert m is not None
    return list_path_for(m.group("tar"), path.parent)


def load_volume_list(path: Path) -> VolumeSet:
    """Read and check the shape of a volume list; every problem is named."""
    return parse_volume_list(_read_list(Path(path)), Path(path).name)


def _read_list(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_LIST_FILE + 1)
    except FileNotFoundError:
        raise UsageError(f"the volume list {path.name} is not beside the volumes",
                         hint="copy NAME.volumes.json (and its .asc) with the volumes") from None
    except OSError as exc:
        raise VerificationError(f"{path.name} is not a readable volume list ({exc})") from None
    if len(raw) > MAX_LIST_FILE:
        raise VerificationError(f"{path.name} is larger than {MAX_LIST_FILE >> 20} MiB; "
                                f"a volume list is a few KB", hint="copy the list again from the original media")
    return raw


def parse_volume_list(raw: bytes, name: str) -> VolumeSet:
    """The volume list in *raw* (unsigned bytes), its shape checked; every problem is named."""
    path = Path(name)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise VerificationError(f"{path.name} is not a readable volume list ({reason})") from None
    problems = []
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise VerificationError(f"{path.name} is not a wheelferry volume list")
    if data.get("format-version") != FORMAT_VERSION:
        problems.append(f"format-version is {repr(data.get('format-version'))[:40]}")
    bundle = data.get("bundle")
    if not isinstance(bundle, str) or "/" in bundle or not _TAR.search(bundle):
        problems.append("bundle is not a plain NAME.tar file name")
    volumes = []
    listed = data.get("volumes")
    if not isinstance(listed, list) or len(listed) > MAX_VOLUMES:
        problems.append(f"volumes is not a list of at most {MAX_VOLUMES} volumes")
        listed = []
    for i, v in enumerate(listed):
        m = _VOLUME.match(v.get("name") or "") if isinstance(v, dict) and isinstance(v.get("name"), str) else None
        # Compared as text: int() of a 5,000-digit number is refused by Python itself.
        ok = (m is not None and m.group("tar") == bundle and m.group("n").lstrip("0") == str(i).lstrip("0")
              and _count(v.get("size"))
              and isinstance(v.get("sha256"), str) and SHA256_HEX.fullmatch(v["sha256"]))
        if not ok:
            name = str(bundle)[:100].encode("unicode_escape").decode("ascii")  # one line, whatever it holds
            problems.append(f"volumes[{i}] is not {{name: {name}.{i:03d}, size, sha256}}")
            if len(problems) > 5:
                break
            continue
        volumes.append(Volume(v["name"], v["size"], v["sha256"]))
    if not volumes:
        problems.append("volumes is empty")
    for key in ("size", "volume-size"):
        if not _count(data.get(key)):
            problems.append(f"{key} is not a non-negative integer")
    if not isinstance(data.get("sha256"), str) or not SHA256_HEX.fullmatch(data["sha256"]):
        problems.append("sha256 is not 64 lowercase hex digits")
    if not problems and sum(v.size for v in volumes) != data["size"]:
        problems.append("the volumes' sizes do not add up to size")
    if problems:
        raise VerificationError(f"{path.name} is malformed: {'; '.join(problems)}")
    return VolumeSet(str(bundle), data["size"], data["sha256"], data["volume-size"], tuple(volumes))


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# The signers of the volume list of each joined tar that is being verified (see joined_bundle).
_LIST_SIGNERS: dict[str, Tally] = {}


def list_signers(tar: Path) -> Tally | None:
    """The Tally of the volume list *tar* was joined from (None for a tar that is not a join)."""
    return _LIST_SIGNERS.get(str(tar))


def _check_list_signature(list_path: Path, raw: bytes, keyring: Path | None, trusted: Iterable[str]) -> Tally:
    """Check the list's signatures over *raw*, the very bytes that are then parsed; return who signed."""
    if keyring is None:
        raise UsageError("a signature check needs --keyring KEYS.asc and --trusted-key FPR",
                         hint="or pass --allow-unsigned for a lab")
    main_asc = list_path.with_name(list_path.name + ".asc")
    if signature_files(list_path) in ([], [main_asc]):
        with signature_check(main_asc, Path(keyring), trusted) as check:
            check.feed(raw)
            return Tally((check.result(),))
    with signatures_check(list_path, Path(keyring), trusted) as many:
        many.feed(raw)
        tally = many.result()
    tally.require(1, f"the volume list {list_path.name}")
    return tally


def _where(vset: VolumeSet, i: int) -> str:
    return f"volume {vset.volumes[i].name} ({i + 1} of {len(vset.volumes)})"


def _check_present(directory: Path, vset: VolumeSet) -> None:
    """Every volume is there with its listed size, before a byte of any is copied."""
    missing = [(i, v) for i, v in enumerate(vset.volumes) if not (directory / v.name).is_file()]
    if missing:
        i, v = missing[0]
        others = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise VerificationError(f"{_where(vset, i)} is missing{others}",
                                hint=f"copy every volume of {vset.bundle} into {directory}")
    for i, v in enumerate(vset.volumes):
        size = (directory / v.name).stat().st_size
        if size != v.size:
            raise VerificationError(f"{_where(vset, i)} is {size} bytes, the list says {v.size} "
                                    f"(altered or damaged)", hint="copy that volume again from the original media")


def _join(directory: Path, vset: VolumeSet, out: Path) -> None:
    """Copy the volumes in order into *out*, checking each one's size and sha256 on the way."""
    listed = {v.sha256: v.name for v in vset.volumes}
    _check_present(directory, vset)
    whole = hashlib.sha256()
    with open(out, "wb") as dst:
        for i, v in enumerate(vset.volumes):
            digest = hashlib.sha256()
            size = 0
            with open(directory / v.name, "rb") as src:
                # One byte past the listed size is enough to know a volume grew since it was measured.
                for chunk in _pieces(src, v.size + 1):
                    digest.update(chunk)
                    whole.update(chunk)
                    size += len(chunk)
                    dst.write(chunk)
            got = digest.hexdigest()
            if got == v.sha256 and size == v.size:
                continue
            where = _where(vset, i)
            if got in listed:
                raise VerificationError(f"{where} holds the data of {listed[got]}: the volumes were "
                                        f"swapped or renamed", hint="restore each volume's own file name")
            detail = f"is {size} bytes, the list says {v.size}" if size != v.size else \
                "does not match its sha256 in the volume list"
            raise VerificationError(f"{where} {detail} (altered or damaged)",
                                    hint="copy that volume again from the original media")
    if whole.hexdigest() != vset.sha256:
        raise VerificationError(f"the joined volumes do not hash to {vset.bundle}'s sha256")


@contextlib.contextmanager
def joined_bundle(path: Path, *, keyring: Path | None, trusted: Iterable[str],
                  allow_unsigned: bool = False) -> Iterator[Path]:
    """Yield a tar path for *path*: the path itself, or the checked join of its volumes."""
    path = Path(path)
    if not is_split(path):
        yield path
        return
    list_path = _list_of(path)
    trusted = list(trusted)
    raw = _read_list(list_path)
    signers = _check_list_signature(list_path, raw, keyring, trusted) if not allow_unsigned else None
    vset = parse_volume_list(raw, list_path.name)
    work = Path(tempfile.mkdtemp(prefix="wheelferry-join-"))
    try:
        joined = work / vset.bundle
        _join(list_path.parent, vset, joined)
        asc = list_path.parent / f"{vset.bundle}.asc"
        if asc.is_file():
            with open(asc, "rb") as src:  # capped: the tar's check refuses a bigger one by its size
                (work / asc.name).write_bytes(src.read(MAX_SIGNATURE_FILE + 1))
        if signers is not None:
            _LIST_SIGNERS[str(joined)] = signers
        yield joined
    finally:
        _LIST_SIGNERS.pop(str(work / vset.bundle), None)
        shutil.rmtree(work, ignore_errors=True)
