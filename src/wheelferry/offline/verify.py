"""Bundle verification in one read of the tar: gpg checks the signature while every member is checked.

Standard library only.  Each chunk read from the file goes both to tarfile,
which parses and hashes the members, and to a ``gpg --verify`` on another core,
so gpg judges exactly the bytes that were parsed.  Nothing is extracted into
place and nothing is recorded until both gpg's verdict and every member check
passed: members go to a temporary directory beside the destination, which is
renamed into place at the end or removed.  When both fail, the signature's
verdict is the one reported.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import time
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, cast

from wheelferry.clikit import warn
from wheelferry.errors import UsageError, VerificationError, WheelferryError
from wheelferry.files import FILE_CHUNK
from wheelferry.jsontypes import JSONObject
from wheelferry.lockfile import LOCK_FILENAME, Lock, loads_lock
from wheelferry.manifest import (
    LOCK_DIR,
    MANIFEST_NAME,
    SUMS_NAME,
    WHEELS_DIR,
    Manifest,
    is_safe_relpath,
    parse_manifest,
    parse_sums,
)
from wheelferry.offline.approvals import SignaturesCheck, Tally, signature_files, signatures_check
from wheelferry.offline.gpg import SignatureCheck, SignatureInfo, signature_check
from wheelferry.offline.state import check_sequence, default_state_dir, record_accepted
from wheelferry.offline.volumes import list_signers
from wheelferry.timestamps import parse_utc

# Big reads: per-call overhead stays negligible and hashlib releases the GIL for them.
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
MANIFEST_CAP = 16 << 20
# Small members that are parsed in memory after their hash is confirmed.
_IN_MEMORY_CAP = 64 << 20
# Wheels barely compress: more data out than this ratio times the compressed bytes read
# (past a small allowance for the manifest and sums) is a decompression bomb.
_RATIO_CAP = 20
_RATIO_SLACK = 32 << 20
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class VerifiedBundle:
    """A bundle that passed every check: what it holds and how long checking took."""

    manifest: Manifest
    manifest_sha256: str
    lock: Lock
    files: Mapping[str, tuple[str, int]]  # path -> (sha256, size), relative to the top folder
    bytes: int
    seconds: float
    signature: SignatureInfo | None
    extracted: Path | None = None
    warnings: tuple[str, ...] = field(default=())
    signers: Tally | None = None  # every counted signature and every one not counted

    def replay_mark(self) -> tuple[str, int, str] | None:
        """(name, sequence, manifest sha256) to remember as accepted, or None: only a verified
        signature moves the replay mark (an unsigned lab bundle never does)."""
        if self.signature is None:
            return None
        return self.manifest.name, self.manifest.sequence, self.manifest_sha256

    def accept(self, state_dir: Path, force_older: bool = False) -> None:
        """Remember this bundle as accepted on this host, once what it was checked for is done."""
        mark = self.replay_mark()
        if mark is not None:
            record_accepted(state_dir, *mark, force_older)

    def signed_by(self) -> str:
        """Who signed, for one line of output."""
        if self.signers is None:
            return "NOT signature-checked"
        return "; ".join(self.signers.lines())

    def to_json(self) -> JSONObject:
        return {
            "name": self.manifest.name, "sequence": self.manifest.sequence,
            "created": self.manifest.created, "expires": self.manifest.expires,
            "targets": [dict(t) for t in self.manifest.targets],
            "files": len(self.files), "bytes": self.bytes, "seconds": round(self.seconds, 3),
            "manifest-sha256": self.manifest_sha256,
            "signature": self.signature.to_json() if self.signature else None,
            **(self.signers.to_json() if self.signers else {}),
            "warnings": list(self.warnings),
        }


class _TeeReader:
    """A read-only file wrapper handing every byte tarfile pulls through it to *sink* as well."""

    def __init__(self, raw: IO[bytes], sink: Callable[[bytes], None] | None) -> None:
        self.raw = raw
        self.sink = sink
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        if self.sink is not None:
            self.sink(data)
        self.count += len(data)
        return data

    def drain(self) -> None:
        while self.read(FILE_CHUNK):
            pass


def _refuse(message: str, hint: str | None = None) -> VerificationError:
    return VerificationError(message, hint=hint or "do not install this bundle; get a fresh copy "
                                                   "from the sender and verify again")


def _manifest_time(text: str, what: str) -> dt.datetime:
    """A time MANIFEST.json gives (``created``, ``expires``), or the bundle is refused."""
    stamp = parse_utc(text)
    if stamp is None:
        raise _refuse(f"MANIFEST.json {what} {text!r} is not an RFC 3339 UTC time")
    return stamp


def check_expiry(manifest: Manifest, now: dt.datetime | None = None) -> None:
    """Refuse a bundle past its ``expires`` time."""
    if manifest.expires is None:
        return
    now = now or dt.datetime.now(dt.timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.timezone.utc)
    if now >= _manifest_time(manifest.expires, "expires"):
        raise _refuse(f"bundle {manifest.name} expired on {manifest.expires}",
                      hint="ask the sender for a newly built bundle")


def _read_all(f: IO[bytes], cap: int) -> bytes:
    data = f.read(cap + 1)
    if len(data) > cap:
        raise _refuse("a bundle member is larger than a verifier will read into memory")
    return data


def _member_kind(m: tarfile.TarInfo) -> str | None:
    if m.isdir():
        return "dir"
    if m.isreg() and not m.issparse():
        return "file"
    return None


class _Pass:
    """State of the single streaming pass over the tar."""

    def __init__(self, staging: Path | None, reader: _TeeReader | None = None) -> None:
        self.staging = staging
        self.reader = reader
        self.unpacked = 0
        self.listed: JSONObject = {}
        self.listed_dirs: set[str] = set()
        self.manifest: Manifest | None = None
        self.manifest_bytes = b""
        self.seen: set[str] = set()
        self.files: dict[str, tuple[str, int]] = {}
        self.kept: dict[str, bytes] = {}
        self.dirs: set[str] = set()
        self.leading = ""  # an optional TOP/ directory entry before the manifest

    def first(self, m: tarfile.TarInfo, stream: IO[bytes]) -> None:
        parts = m.name.split("/")
        if len(parts) != 2 or parts[1] != MANIFEST_NAME or not is_safe_relpath(m.name) \
                or _member_kind(m) != "file":
            raise _refuse(f"the bundle's first member is {m.name!r}, not TOP/{MANIFEST_NAME}",
                          hint="this is not a wheelferry bundle, or it was repacked")
        if m.size > MANIFEST_CAP:
            raise _refuse(f"{m.name} is {m.size} bytes, more than a manifest may be")
        self.manifest_bytes = _read_all(stream, MANIFEST_CAP)
        try:
            data = json.loads(self.manifest_bytes.decode("utf-8"))
        except ValueError as exc:
            raise _refuse(f"{m.name} is not valid JSON: {exc}") from None
        except RecursionError:
            raise _refuse(f"{m.name} nests too deeply to be a manifest") from None
        try:
            self.manifest = parse_manifest(data)
        except (TypeError, AttributeError, KeyError, IndexError, RecursionError) as exc:
            raise _refuse(f"{m.name} has a field of the wrong type ({type(exc).__name__})") from None
        # One index of the listed paths and their folders: member checks stay linear.
        self.listed = self.manifest.by_path()
        for path in self.listed:
            steps = path.split("/")
            for i in range(1, len(steps)):
                self.listed_dirs.add("/".join(steps[:i]))
        if self.manifest.top != parts[0]:
            raise _refuse(f"the bundle's top folder is {parts[0]!r} but its manifest names "
                          f"{self.manifest.name!r}")
        if self.leading and self.leading != parts[0]:
            raise _refuse(f"member {self.leading!r} is outside the single top folder {parts[0]}/")
        self.seen.add(m.name)
        if self.staging is not None:
            (self.staging / MANIFEST_NAME).write_bytes(self.manifest_bytes)

    def member(self, m: tarfile.TarInfo, stream: IO[bytes] | None) -> None:
        assert self.manifest is not None
        top = self.manifest.top
        kind = _member_kind(m)
        name = m.name
        if name.startswith("/") or ".." in name.replace("\\", "/").split("/"):
            raise _refuse(f"member {name!r} points outside the bundle")
        if kind is None:
            raise _refuse(f"member {name!r} is a link, device or other special file; a bundle "
                          f"holds only regular files")
        rel = name[len(top) + 1:] if name.startswith(top + "/") else ""
        if kind == "dir":
            rel = rel.rstrip("/")
        if not rel or not is_safe_relpath(rel):
            raise _refuse(f"member {name!r} is not a plain path under the top folder {top}/")
        if name in self.seen or rel in self.dirs:
            raise _refuse(f"member {name!r} appears twice in the bundle")
        self.seen.add(name)
        listed = self.listed
        if kind == "dir":
            if rel not in self.listed_dirs:
                raise _refuse(f"directory {name!r} is not part of the manifest (extra member)")
            self.dirs.add(rel)
            if self.staging is not None:
                (self.staging / rel).mkdir(parents=True, exist_ok=True)
            return
        entry = listed.get(rel)
        if entry is None:
            raise _refuse(f"member {name!r} is not listed in MANIFEST.json (extra member)")
        if m.size != entry.size:
            raise _refuse(f"member {name!r} is {m.size} bytes; MANIFEST.json says {entry.size}")
        assert stream is not None
        self.files[rel] = (self._copy(rel, stream, entry.size), m.size)
        if self.files[rel][0] != entry.sha256:
            raise _refuse(f"{rel} does not match its sha256 in MANIFEST.json (altered file)")

    def _copy(self, rel: str, stream: IO[bytes], size: int) -> str:
        digest = hashlib.sha256()
        keep = rel in (SUMS_NAME, f"{LOCK_DIR}/{LOCK_FILENAME}")
        if keep and size > _IN_MEMORY_CAP:
            raise _refuse(f"{rel} is {size} bytes, too large to be a {rel}")
        buf = bytearray()
        out = None
        if self.staging is not None:
            target = self.staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            # O_EXCL | O_NOFOLLOW: a fresh private directory, but never write through a link.
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                         0o644)
            out = os.fdopen(fd, "wb")
        # The unbuffered layer under tarfile's member reader: one copy less per chunk.
        source = getattr(stream, "raw", stream)
        try:
            for chunk in iter(lambda: source.read(FILE_CHUNK), b""):
                self._bound(len(chunk))
                digest.update(chunk)
                if keep:
                    buf += chunk
                if out is not None:
                    out.write(chunk)
        finally:
            if out is not None:
                out.close()
        if keep:
            self.kept[rel] = bytes(buf)
        return digest.hexdigest()

    def _bound(self, n: int) -> None:
        """Refuse as soon as the data out outgrows what the compressed bytes read can honestly hold."""
        self.unpacked += n
        if self.reader is not None and self.unpacked > _RATIO_CAP * self.reader.count + _RATIO_SLACK:
            raise _refuse(f"the bundle unpacks to more than {_RATIO_CAP} times its compressed size "
                          f"(a decompression bomb, not wheels)")

    def finish(self) -> Lock:
        manifest = self.manifest
        if manifest is None:
            raise _refuse("the bundle is empty", hint="this is not a wheelferry bundle")
        missing = sorted(set(manifest.by_path()) - set(self.files))
        if missing:
            more = f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
            raise _refuse(f"the bundle is missing {', '.join(missing[:5])}{more}, listed in MANIFEST.json")
        if SUMS_NAME not in self.kept:
            raise _refuse(f"the bundle has no {SUMS_NAME}")
        sums = parse_sums(self.kept[SUMS_NAME].decode("utf-8", errors="replace"))
        expected = {e.path: e.sha256 for e in manifest.files if e.path != SUMS_NAME}
        if sums != expected:
            odd = sorted(p for p in set(sums) | set(expected) if sums.get(p) != expected.get(p))
            raise _refuse(f"{SUMS_NAME} and MANIFEST.json disagree about {', '.join(odd[:5])}")
        lock_rel = f"{LOCK_DIR}/{LOCK_FILENAME}"
        if lock_rel not in self.kept:
            raise _refuse(f"the bundle has no {lock_rel}")
        try:
            lock = loads_lock(self.kept[lock_rel], lock_rel)
        except WheelferryError as exc:
            raise _refuse(f"the bundle's lock is malformed: {exc}") from None
        except RecursionError:
            raise _refuse("the bundle's lock nests too deeply to be a lock") from None
        except (TypeError, AttributeError, KeyError, IndexError, ValueError) as exc:
            raise _refuse(f"the bundle's lock has a field of the wrong type ({type(exc).__name__})") from None
        for wheel in lock.wheels.values():
            got = self.files.get(f"{WHEELS_DIR}/{wheel.filename}")
            if got is None or got[0] != wheel.sha256:
                raise _refuse(f"the lock's wheel {wheel.filename} is not in the bundle with the "
                              f"sha256 the lock records")
        return lock


def _tar_errors() -> tuple[type[BaseException], ...]:
    errors: tuple[type[BaseException], ...] = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)
    try:
        from compression.zstd import ZstdError  # type: ignore[import-not-found]  # Python 3.14+
    except ImportError:
        return errors
    return (*errors, ZstdError)


def _refuse_unreadable_compression(tar_path: Path) -> None:
    """Name a zstd bundle plainly instead of calling it damaged when this Python cannot read zstd."""
    with open(tar_path, "rb") as f:
        magic = f.read(len(ZSTD_MAGIC))
    if magic != ZSTD_MAGIC:
        return
    try:
        import compression.zstd  # type: ignore[import-not-found]  # noqa: F401  # Python 3.14+
    except ImportError:
        raise VerificationError(
            f"{tar_path.name} is zstd-compressed, and this Python cannot read zstd bundles",
            hint="ask the sender to rebuild it with `--compress gzip` (or no compression), "
                 "or verify with Python 3.14 or newer") from None


def _stream_mode(tar_path: Path, f: IO[bytes]) -> str:
    """The tarfile mode for what build writes (plain tar, gzip, zstd), chosen by magic bytes."""
    head = f.read(512)
    f.seek(0)
    if head.startswith(_GZIP_MAGIC):
        return "r|gz"
    if head.startswith(ZSTD_MAGIC):
        return "r|zst"
    if len(head) == 512 and head[257:262] == b"ustar":
        return "r|"
    if head.startswith(b"BZh"):
        kind = "bzip2"
    elif head.startswith(b"\xfd7zXZ\x00"):
        kind = "xz"
    elif head.startswith(b"\x5d\x00\x00"):
        kind = "lzma"
    else:
        return "r|"  # not compressed by anything known: tarfile names the damage
    raise _refuse(f"{tar_path.name} is {kind}-compressed; wheelferry build writes only plain tar, "
                  f"gzip or zstd", hint="this is not a bundle wheelferry built; get a fresh copy "
                                        "from the sender")


def _stream_check(tar_path: Path, staging: Path | None, before_data: Callable[[Manifest, str], None],
                  sink: Callable[[bytes], None] | None) -> tuple[_Pass, Lock | None, int, WheelferryError | None]:
    """One read of *tar_path*: every chunk to *sink*, members checked; a refusal is returned, not raised.

    After a refusal the rest of the file still goes to *sink*, so the signature
    verdict can take precedence over what the damaged or forged content says.
    """
    lock = None
    failure: WheelferryError | None = None
    with open(tar_path, "rb", buffering=0) as raw:
        mode = _stream_mode(tar_path, raw)
        reader = _TeeReader(raw, sink)
        check = _Pass(staging, reader)
        try:
            # Decompression by a file object that hands out at most what is asked for, never
            # tarfile's own stream (which inflates a whole compressed buffer at once).
            source: Any = reader  # Any: the tee, or gzip/zstd reading from it (tarfile takes any of them)
            if mode == "r|gz":
                source = gzip.GzipFile(fileobj=reader, mode="rb")  # type: ignore[call-overload]
            elif mode == "r|zst":
                zstd: Any = __import__("compression.zstd", fromlist=["ZstdFile"])  # Any: Python 3.14+ only
                source = zstd.ZstdFile(reader, mode="rb")
            with tarfile.open(fileobj=source, mode="r|", bufsize=FILE_CHUNK) as tar:
                for m in tar:
                    stream = tar.extractfile(m) if m.isreg() else None
                    if check.manifest is None:
                        if m.isdir() and "/" not in m.name and is_safe_relpath(m.name) \
                                and not check.leading:
                            check.leading = m.name
                            continue
                        check.first(m, stream)  # type: ignore[arg-type]
                        # first() has read the manifest (or raised); mypy still sees the None above
                        before_data(cast(Manifest, check.manifest), hashlib.sha256(check.manifest_bytes).hexdigest())
                        continue
                    check.member(m, stream)
            lock = check.finish()
        except _tar_errors() as exc:
            failure = _refuse(f"{tar_path.name} is damaged or not a tar archive ({exc})")
        except WheelferryError as exc:
            failure = exc
        if failure is None or sink is not None:
            reader.drain()
    return check, lock, reader.count, failure


def _finish(sig: SignatureCheck | SignaturesCheck | None, failure: WheelferryError | None) -> Tally | None:
    """gpg's verdict first (a bad signature explains any damage), then the members' refusal."""
    signature = sig.result() if sig is not None else None
    if isinstance(signature, SignatureInfo):
        signature = Tally((signature,))
    if failure is not None:
        raise failure
    return signature


def verify_bundle(tar_path: Path, *, keyring: Path | None, trusted: Iterable[str],
                  allow_unsigned: bool = False, state_dir: Path | None = None,
                  force_older: bool = False, extract_to: Path | None = None,
                  now: dt.datetime | None = None, threshold: int = 1,
                  manifest_approvals: bool = True) -> VerifiedBundle:
    """Verify *tar_path* (signature, freshness, every member) and optionally extract it.

    Good signatures by at least max(*threshold*, the manifest's ``approvals``, 1) distinct pinned
    keys are required (without *manifest_approvals*, as ``approve`` checks: max(*threshold*, 1)).
    """
    started = time.monotonic()
    tar_path = Path(tar_path)
    if not tar_path.is_file():
        raise UsageError(f"bundle {tar_path} does not exist", hint="pass the path of NAME.tar")
    trusted = list(trusted)
    warnings: list[str] = []
    if allow_unsigned:
        text = (f"NOT checking the signature of {tar_path.name} (--allow-unsigned): anyone who could "
                f"change the file could have changed what gets installed")
        warn(text)
        warnings.append(text)
    else:
        if keyring is None or not trusted:
            raise UsageError("a signature check needs --keyring KEYS.asc and --trusted-key FPR",
                             hint="or pass --allow-unsigned for a lab")
    state_dir = state_dir or default_state_dir()

    def before_data(manifest: Manifest, manifest_sha256: str) -> None:
        # Freshness is decided from the manifest before any large member is read; should the
        # signature then fail, that verdict is the one reported.
        check_expiry(manifest, now)
        forced = check_sequence(state_dir, manifest.name, manifest.sequence, manifest_sha256, force_older)
        if forced:
            warn(forced)
            warnings.append(forced)

    _refuse_unreadable_compression(tar_path)
    staging = None
    if extract_to is not None:
        extract_to = Path(extract_to)
        if extract_to.exists() and (not extract_to.is_dir() or any(extract_to.iterdir())):
            raise UsageError(f"{extract_to} already exists", hint="extract into a new directory")
        extract_to.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{extract_to.name}.part-", dir=extract_to.parent))
    try:
        with contextlib.ExitStack() as stack:
            sig: SignatureCheck | SignaturesCheck | None = None
            if not allow_unsigned:
                assert keyring is not None
                main_asc = tar_path.with_name(tar_path.name + ".asc")
                if signature_files(tar_path) in ([], [main_asc]):  # the builder's alone
                    sig = stack.enter_context(signature_check(main_asc, Path(keyring), trusted))
                else:  # approvals too: every gpg fed from the same read
                    sig = stack.enter_context(signatures_check(tar_path, Path(keyring), trusted))
            check, lock, count, failure = _stream_check(
                tar_path, staging, before_data, sig.feed if sig is not None else None)
            signers = _finish(sig, failure)
            if signers is not None:
                assert check.manifest is not None
                signers = signers.merge(list_signers(tar_path))
                wanted = check.manifest.approvals if manifest_approvals else 1
                signers.require(max(threshold, wanted, 1),
                                f"bundle {check.manifest.name} #{check.manifest.sequence}")
        if staging is not None and extract_to is not None:
            if extract_to.exists():
                extract_to.rmdir()
            os.rename(staging, extract_to)
            staging = None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    assert check.manifest is not None
    return VerifiedBundle(
        manifest=check.manifest,
        manifest_sha256=hashlib.sha256(check.manifest_bytes).hexdigest(),
        lock=lock, files=dict(check.files), bytes=count,  # type: ignore[arg-type]
        seconds=time.monotonic() - started, signature=signers.counted[0] if signers else None,
        extracted=extract_to, warnings=tuple(warnings), signers=signers,
    )

