"""Test bundles in the documented format, written by hand so hostile variants are easy to craft.

``bundle_members`` returns the members of a well-formed bundle (MANIFEST.json
first); a test may edit that list (``tamper``) before ``write_tar`` packs it.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from packaging.markers import default_environment
from packaging.utils import canonicalize_name, parse_wheel_filename

from wheelferry.lockfile import (
    LOCK_FILENAME,
    Edge,
    Lock,
    LockedPackage,
    LockedTarget,
    SpecRecord,
    TrimmedEdge,
    WheelFile,
)
from wheelferry.manifest import (
    LOCK_DIR,
    MANIFEST_NAME,
    SUMS_NAME,
    WHEELS_DIR,
    FileEntry,
    Manifest,
    render_sums,
)

CREATED = "2026-01-01T00:00:00Z"


@dataclass(frozen=True)
class Member:
    """One tar member; ``size`` overrides the header size (for lying headers)."""

    name: str
    data: bytes = b""
    type: bytes = tarfile.REGTYPE
    linkname: str = ""

    def with_data(self, data: bytes) -> Member:
        return replace(self, data=data)


def host_markers() -> dict[str, str]:
    """The complete marker environment of the interpreter running the tests."""
    return dict(default_environment())


def make_lock(wheels: Sequence[Path], *, name: str, targets: Mapping[str, Mapping[str, str]],
              smoke: Sequence[str] = (), per_target: Mapping[str, Sequence[str]] | None = None,
              trimmed: Sequence[TrimmedEdge] = ()) -> Lock:
    """A lock where every target holds every wheel (or the file names in *per_target*)."""
    files = {}
    for w in wheels:
        data = w.read_bytes()
        files[w.name] = WheelFile(w.name, hashlib.sha256(data).hexdigest(), len(data),
                                  (f"https://mirror.example/simple/files/{w.name}",))
    locked = []
    for tid, markers in targets.items():
        pkgs = []
        for fname in (per_target or {}).get(tid, list(files)):
            dist, version, _, _ = parse_wheel_filename(fname)
            pkgs.append(LockedPackage(str(canonicalize_name(dist)), str(version), fname,
                                      (Edge(None, f"{dist}=={version}"),)))
        locked.append(LockedTarget(tid, tid, {}, dict(markers), tuple(p.name for p in pkgs),
                                   tuple(pkgs), trimmed=tuple(trimmed)))
    return Lock(SpecRecord(name, tuple(p for p in sorted(files)), tuple(targets), smoke=tuple(smoke)),
                ("https://mirror.example/simple",), tuple(locked), files, "wheelferry-tests")


def bundle_members(wheels: Sequence[Path], *, name: str = "demo",
                   targets: Mapping[str, Mapping[str, str]] | None = None, sequence: int = 1,
                   expires: str | None = None, smoke: Sequence[str] = (),
                   lock: Lock | None = None, extra_files: Mapping[str, bytes] | None = None) -> list[Member]:
    """Members of a well-formed bundle: MANIFEST.json, SHA256SUMS, lock, wheels."""
    targets = targets if targets is not None else {"host": host_markers()}
    lock = lock or make_lock(wheels, name=name, targets=targets, smoke=smoke)
    content: dict[str, bytes] = {f"{LOCK_DIR}/{LOCK_FILENAME}": lock.dumps().encode()}
    for w in wheels:
        content[f"{WHEELS_DIR}/{w.name}"] = w.read_bytes()
    content.update(extra_files or {})
    entries = [FileEntry(p, hashlib.sha256(d).hexdigest(), len(d)) for p, d in content.items()]
    sums = render_sums(entries).encode()
    entries.append(FileEntry(SUMS_NAME, hashlib.sha256(sums).hexdigest(), len(sums)))
    content[SUMS_NAME] = sums
    manifest = Manifest(name, sequence, CREATED, tuple({"id": t, "spec": t} for t in targets),
                        tuple(entries), expires=expires, tool="wheelferry-tests")
    members = [Member(f"{name}/{MANIFEST_NAME}", manifest.dumps().encode())]
    members += [Member(f"{name}/{p}", content[p]) for p in sorted(content)]
    return members


def write_tar(path: Path, members: Sequence[Member], sizes: Mapping[str, int] | None = None) -> Path:
    """Pack *members* in order; *sizes* gives a header size that differs from the data."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for m in members:
            info = tarfile.TarInfo(m.name)
            info.type = m.type
            info.linkname = m.linkname
            info.mtime = 1577836800
            info.mode = 0o755 if m.type == tarfile.DIRTYPE else 0o644
            data = m.data if m.type == tarfile.REGTYPE else b""
            info.size = len(data)
            if sizes and m.name in sizes:
                data = data[:sizes[m.name]].ljust(sizes[m.name], b"\0")
                info.size = sizes[m.name]
            tar.addfile(info, io.BytesIO(data) if info.size else None)
    return path


def many_members_bundle(path: Path, count: int, *, tool: str = "wheelferry-tests") -> Path:
    """An unsigned bundle whose manifest lists *count* empty wheels, and no SHA256SUMS."""
    empty = hashlib.sha256(b"").hexdigest()
    entries = tuple(FileEntry(f"wheels/e{i}.whl", empty, 0) for i in range(count))
    manifest = Manifest("demo", 1, CREATED, ({"id": "host", "spec": "host"},), entries, tool=tool)
    members = [Member("demo/MANIFEST.json", manifest.dumps().encode())]
    members += [Member(f"demo/{e.path}") for e in entries]
    return write_tar(path, members)


def make_bundle(tmp_path: Path, wheels: Sequence[Path], *, name: str = "demo",
                targets: Mapping[str, Mapping[str, str]] | None = None, sequence: int = 1,
                expires: str | None = None, smoke: Sequence[str] = (),
                tamper: Callable[[list[Member]], list[Member]] | None = None,
                lock: Lock | None = None, out: Path | None = None) -> Path:
    """Write ``NAME.tar`` (unsigned) into *tmp_path*; sign it with ``gpg_keys.sign``."""
    members = bundle_members(wheels, name=name, targets=targets, sequence=sequence,
                             expires=expires, smoke=smoke, lock=lock)
    if tamper is not None:
        members = tamper(members)
    return write_tar(out or tmp_path / f"{name}.tar", members)
