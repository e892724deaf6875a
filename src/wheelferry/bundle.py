"""The bundle writer: a deterministic ``NAME.tar`` of lock files, wheels, SBOM and manifests.

The layout is fixed by :mod:`wheelferry.manifest`.  The same lock, lock files,
wheels and times give a byte-identical tar: PAX format, members sorted after
``MANIFEST.json``, one fixed mtime, uid/gid 0, empty owner names, modes 0644
and 0755, no compression unless asked for (wheels are zip files already).

Signing reads no byte a second time: every byte written to the tar is also
handed to *tee* (a :class:`wheelferry.sign.StreamSigner` feeding gpg on
another core), and *before_publish* (collecting the signature) runs on the
finished temporary file before it is renamed into place, so a signing failure
leaves no tar behind.  Each wheel is read from disk exactly once, while it is
copied into the tar, and hashed on the way to catch a changed cache.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import tarfile
import tempfile
import threading
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable

from wheelferry.errors import BundleError, UsageError
from wheelferry.files import BackgroundHash, temp_prefix
from wheelferry.interrupt import checkpoint
from wheelferry.lockfile import Lock
from wheelferry.manifest import (
    LOCK_DIR,
    MANIFEST_NAME,
    SBOM_NAME,
    SUMS_NAME,
    WHEELS_DIR,
    FileEntry,
    Manifest,
    is_safe_relpath,
    render_sums,
)
from wheelferry.offline import cyclonedx
from wheelferry.offline.licences import Licence
from wheelferry.timestamps import utc_text

# Each chunk is read, hashed, written and handed to gpg while it is still in the CPU's cache
# (larger chunks fall out of it; the pack stage of benchmarks/run times a signed bundle).
TAR_CHUNK = 256 << 10  # bytes per read while a wheel is copied into the tar (and hashed, and teed)
COMPRESSIONS = {None: ".tar", "gzip": ".tar.gz", "zstd": ".tar.zst"}


@dataclass(frozen=True)
class BundleResult:
    """A bundle written into place: its path, manifest, size in bytes and sha256 (hex)."""

    path: Path
    manifest: Manifest
    size: int
    sha256: str


@dataclass(frozen=True)
class _Member:
    """One planned tar member: in-memory ``data`` or a wheel at ``source``."""

    path: str  # relative to the top folder
    entry: FileEntry | None  # None for a directory
    data: bytes | None = None
    source: Path | None = None


class _HashingReader:
    """Reads a wheel for tarfile, hashing every byte (as pypa/installer hashes while copying)."""

    def __init__(self, raw: IO[bytes], tick: Callable[[int], object]) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()
        self.count = 0
        self.tick = tick

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(TAR_CHUNK if n < 0 else min(n, TAR_CHUNK))
        self.digest.update(data)
        self.count += len(data)
        self.tick(len(data))
        return data


def _no_progress(_n: int) -> None:
    pass


class _Output:
    """The bundle file being written: every byte also goes to *tee*, and is synced as it goes.

    A thread calls ``fdatasync`` after every ``SYNC_EVERY`` bytes, so the
    disk writes while the tar is still being made and the final ``fsync``
    (the bundle must be on disk before it takes its name) finds little left.
    """

    SYNC_EVERY = 64 << 20

    def __init__(self, out: IO[bytes], tee: Callable[[bytes], None] | None) -> None:
        self._out = out
        self._tee = tee
        self.sha256 = BackgroundHash()  # of the file as written, on another core: what the operator compares
        self._unsynced = 0
        self._kick = threading.Event()
        self._stop = False
        self._syncer = threading.Thread(target=self._sync, name="bundle-sync", daemon=True)
        self._syncer.start()

    def _sync(self) -> None:
        while True:
            self._kick.wait()
            self._kick.clear()
            if self._stop:
                return
            with contextlib.suppress(OSError):  # the final fsync reports any failure
                getattr(os, "fdatasync", os.fsync)(self._out.fileno())  # macOS has no fdatasync

    def write(self, data: bytes) -> int:
        data = bytes(data)  # compressors may hand over a view of a buffer they reuse
        if self._tee is not None:
            self._tee(data)
        self.sha256.update(data)
        self._unsynced += len(data)
        if self._unsynced >= self.SYNC_EVERY:
            self._unsynced = 0
            self._kick.set()
        return self._out.write(data)

    def stop(self) -> None:
        """Stop the syncing thread (at once, should writing fail)."""
        self._stop = True
        self._kick.set()
        self._syncer.join()
        self.sha256.finish()

    def finish(self) -> None:
        """All written: flush and fsync the file for good."""
        self.stop()
        self._out.flush()
        os.fsync(self._out.fileno())

    def __getattr__(self, name: str) -> Any:  # Any: whatever the wrapped file has
        return getattr(self._out, name)


def source_date_epoch() -> int | None:
    """``SOURCE_DATE_EPOCH`` (reproducible-builds.org) as an integer, or None when unset."""
    env = os.environ.get("SOURCE_DATE_EPOCH")
    if not env:
        return None
    try:
        return int(env)
    except ValueError:
        raise UsageError(f"SOURCE_DATE_EPOCH={env!r} is not an integer",
                         hint="set it to seconds since 1970-01-01 UTC, or unset it") from None


def tar_mtime(created: int) -> int:
    """The one mtime of every member: ``SOURCE_DATE_EPOCH`` when set, else *created*."""
    epoch = source_date_epoch()
    return created if epoch is None else epoch


def _small(path: str, data: bytes) -> _Member:
    return _Member(path, FileEntry(path, hashlib.sha256(data).hexdigest(), len(data)), data=data)


def _plan(name: str, lock: Lock, lock_files: Mapping[str, bytes],
          wheel_paths: Mapping[str, Path], sbom: bytes) -> list[_Member]:
    """Every member but the manifest, with hashes from memory or from the lock."""
    if not is_safe_relpath(name) or "/" in name:
        raise UsageError(f"bundle name {name!r} is not a plain file name",
                         hint="use letters, digits, '.', '_', '-' and '+' only")
    members = [_Member(LOCK_DIR, None), _Member(WHEELS_DIR, None), _small(SBOM_NAME, sbom)]
    for fname in sorted(lock_files):
        if not is_safe_relpath(fname) or "/" in fname:
            raise BundleError(f"lock file name {fname!r} is not a plain file name")
        members.append(_small(f"{LOCK_DIR}/{fname}", lock_files[fname]))
    missing = sorted(set(lock.wheels) - set(wheel_paths))
    if missing:
        raise BundleError(f"no downloaded file for {len(missing)} locked wheel(s): {', '.join(missing[:5])}",
                          hint="fetch the wheels of the lock before writing the bundle")
    for fname in sorted(lock.wheels):
        wheel = lock.wheels[fname]
        path = Path(wheel_paths[fname])
        if not is_safe_relpath(fname) or "/" in fname:
            raise BundleError(f"wheel file name {fname!r} is not a plain file name")
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise BundleError(f"cannot read the cached wheel {path}: {exc.strerror}",
                              hint="run the build again to download it") from None
        if wheel.size is not None and size != wheel.size:
            raise _changed(fname, path, f"it is {size} bytes, the lock says {wheel.size}")
        path_in = f"{WHEELS_DIR}/{fname}"
        members.append(_Member(path_in, FileEntry(path_in, wheel.sha256, size), source=path))
    entries = [m.entry for m in members if m.entry is not None]
    members.append(_small(SUMS_NAME, render_sums(entries).encode()))
    return sorted(members, key=lambda m: m.path)


def _changed(fname: str, path: Path, detail: str) -> BundleError:
    return BundleError(f"the cached wheel {fname} changed after it was downloaded: {detail}",
                       hint=f"delete {path} and build again; it will be downloaded and checked afresh")


def _info(path: str, size: int, mtime: int, is_dir: bool) -> tarfile.TarInfo:
    info = tarfile.TarInfo(path)
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if is_dir:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    else:
        info.mode = 0o644
        info.size = size
    return info


def check_compression(compress: str | None) -> Any:  # Any: the zstandard module, or None
    """Refuse a compression this host cannot write (checked before any download).

    Returns the ``zstandard`` module for zstd, else None.
    """
    if compress not in COMPRESSIONS:
        raise UsageError(f"unknown compression {compress!r}", hint="use gzip, zstd or none")
    if compress != "zstd":
        return None
    try:
        import zstandard
    except ImportError:
        raise UsageError("zstd compression needs the 'zstandard' package, which is not installed",
                         hint="install it (pip install zstandard), or use gzip or no compression") from None
    return zstandard


def _open_compressed(raw: IO[bytes], compress: str | None, stack: ExitStack) -> IO[bytes]:
    if compress is None:
        return raw
    if compress == "gzip":
        # mtime=0 and no file name keep the gzip header free of time and path.
        gz = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0)
        stack.enter_context(gz)
        return gz  # type: ignore[return-value]
    zstandard = check_compression(compress)
    writer = zstandard.ZstdCompressor(level=10).stream_writer(raw, closefd=False)
    return stack.enter_context(writer)  # type: ignore[no-any-return, unused-ignore]


def _write_tar(out: IO[bytes], top: str, manifest_bytes: bytes, members: list[_Member],
               mtime: int, compress: str | None, tick: Callable[[int], object]) -> None:
    with ExitStack() as stack:
        sink = _open_compressed(out, compress, stack)
        tar = stack.enter_context(tarfile.TarFile(fileobj=sink, mode="w", format=tarfile.PAX_FORMAT,
                                                  copybufsize=TAR_CHUNK))
        tar.addfile(_info(f"{top}/{MANIFEST_NAME}", len(manifest_bytes), mtime, False),
                    io.BytesIO(manifest_bytes))
        for m in members:
            if m.entry is None:
                tar.addfile(_info(f"{top}/{m.path}", 0, mtime, True))
            elif m.data is not None:
                tar.addfile(_info(f"{top}/{m.path}", m.entry.size, mtime, False), io.BytesIO(m.data))
                tick(m.entry.size)
            else:
                assert m.source is not None
                _add_wheel(tar, top, m, mtime, tick)
                checkpoint("pack")  # a test pauses here, the tar half-written


def _add_wheel(tar: tarfile.TarFile, top: str, m: _Member, mtime: int, tick: Callable[[int], object]) -> None:
    assert m.entry is not None and m.source is not None
    fname = m.path.split("/", 1)[1]
    with open(m.source, "rb") as f:
        reader = _HashingReader(f, tick)
        try:
            tar.addfile(_info(f"{top}/{m.path}", m.entry.size, mtime, False), reader)
        except OSError:
            if reader.count < m.entry.size:
                raise _changed(fname, m.source, f"it shrank to {reader.count} bytes") from None
            raise
        if f.read(1):
            raise _changed(fname, m.source, f"it grew beyond {m.entry.size} bytes")
    if reader.digest.hexdigest() != m.entry.sha256:
        raise _changed(fname, m.source, f"sha256 is {reader.digest.hexdigest()}, "
                                        f"the lock says {m.entry.sha256}")


def write_bundle(out_dir: Path, *, name: str, lock: Lock, lock_files: Mapping[str, bytes],
                 wheel_paths: Mapping[str, Path], sequence: int, created: int, expires: int | None,
                 tool: str, compress: str | None = None, licences: Mapping[str, Licence] | None = None,
                 sbom: bytes | None = None,
                 progress: bool = False, tee: Callable[[bytes], None] | None = None,
                 before_publish: Callable[[Path], None] | None = None,
                 approvals: int = 1) -> BundleResult:
    """Write ``out_dir/NAME.tar`` (or ``.tar.gz``/``.tar.zst``) atomically and return what it holds.

    Every byte of the file also goes to *tee*; *before_publish* gets the
    finished temporary file before it takes its final name (and may refuse it).
    The SBOM is written from *lock* and *licences* (by wheel file) unless *sbom* is given.
    """
    check_compression(compress)
    if sbom is None:
        sbom = cyclonedx.dumps(cyclonedx.bom(lock, licences or {}, name=name, sequence=sequence,
                                             created=utc_text(created)))
    members = _plan(name, lock, lock_files, wheel_paths, sbom)
    files = [m.entry for m in members if m.entry is not None]
    manifest = Manifest(
        name=name, sequence=sequence, created=utc_text(created),
        targets=tuple({"id": t.id, "spec": t.spec} for t in lock.targets),
        files=tuple(files), expires=utc_text(expires) if expires is not None else None, tool=tool,
        approvals=approvals)
    manifest_bytes = manifest.dumps().encode()
    mtime = tar_mtime(created)
    out_dir = Path(out_dir)
    final = out_dir / f"{name}{COMPRESSIONS[compress]}"
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=temp_prefix(final.name), suffix=".tmp", dir=out_dir)
    except OSError as exc:
        raise BundleError(f"cannot write into {out_dir}: {exc.strerror}",
                          hint="choose a writable output directory with -o") from None
    tmp = Path(tmp_name)
    total = len(manifest_bytes) + sum(f.size for f in files)
    try:
        with ExitStack() as stack:
            out = _Output(stack.enter_context(os.fdopen(fd, "wb")), tee)
            stack.callback(out.stop)
            tick: Callable[[int], object] = _no_progress
            if progress:
                from tqdm import tqdm
                bar = stack.enter_context(tqdm(total=total, unit="B", unit_scale=True,
                                               unit_divisor=1024, desc=f"packing {final.name}"))
                tick = bar.update
            _write_tar(out, name, manifest_bytes, members, mtime, compress, tick)  # type: ignore[arg-type]
            out.finish()
            digest = out.sha256.hexdigest()
        if before_publish is not None:
            before_publish(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, final)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, BundleError):
            raise BundleError(f"cannot write {final}: {exc.strerror or exc}",
                              hint="check the free space and permissions of the output directory") from None
        raise
    return BundleResult(final, manifest, final.stat().st_size, digest)
