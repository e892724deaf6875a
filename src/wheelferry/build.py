"""Building: a lock and a session -> fetched wheels -> bundle, offline kit, signatures, volumes."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from wheelferry import __version__
from wheelferry.bundle import COMPRESSIONS, BundleResult, source_date_epoch, write_bundle
from wheelferry.cache import WheelCache
from wheelferry.coremetadata import read_core_metadata
from wheelferry.errors import LockFileError, MetadataError
from wheelferry.fetch import fetch_summary, fetch_wheels
from wheelferry.files import atomic_write, clean_stale_temporaries
from wheelferry.jsontypes import JSONObject
from wheelferry.lock import render_lock_files
from wheelferry.lockfile import Lock
from wheelferry.metadata import read_wheel_metadata
from wheelferry.offline.licences import Licence, wheel_licences
from wheelferry.pages import name_and_version, version_or_none
from wheelferry.pyz import write_offline_pyz
from wheelferry.sign import SigningKey, StreamSigner, export_public_key, sign_detached
from wheelferry.timestamps import parse_utc
from wheelferry.urls import strip_credentials

if TYPE_CHECKING:
    import requests

    from wheelferry.index import IndexClient
    from wheelferry.offline.advisories import Finding
    from wheelferry.offline.policy import Policy

KIT_NAME = "wheelferry-offline.pyz"


@dataclass(frozen=True)
class Signer:
    """A checked signing key and how to reach it."""

    key: SigningKey
    gnupghome: str | None
    passphrase: str | None

    def sign(self, path: Path) -> Path:
        return sign_detached(path, self.key, self.gnupghome, self.passphrase)

    def stream(self) -> StreamSigner | None:
        """A signature made while the file is written (see :class:`StreamSigner`).

        None on Windows, where a child cannot be handed the passphrase pipe: there the
        finished file is signed afterwards.
        """
        if os.name == "nt":
            return None
        return StreamSigner(self.key, self.gnupghome, self.passphrase)


@dataclass(frozen=True)
class BuildOptions:
    """What the user asked of the bundle."""

    out_dir: Path
    name: str
    jobs: int = 8
    sequence: int | None = None
    expires_days: float | None = None
    compress: str | None = None
    split_size: int | None = None
    export_key: bool = False
    progress: bool = False
    approvals: int = 1  # distinct pinned signers a verifier requires (MANIFEST.json "approvals")
    policy: Policy | None = None  # every rule, licences included, before anything is written


@dataclass(frozen=True)
class BuildResult:
    """Everything a build wrote, and how the fetch went."""

    bundle: BundleResult
    kit: Path
    fetch: JSONObject
    fetch_seconds: float
    signatures: tuple[Path, ...] = ()
    public_key: Path | None = None
    volumes: JSONObject | None = field(default=None)


def created_epoch(lock: Lock) -> int:
    """The bundle's time: SOURCE_DATE_EPOCH, else the newest wheel upload (reproducible), else 0."""
    epoch = source_date_epoch()
    if epoch is not None:
        return epoch
    times = []
    for w in lock.wheels.values():
        stamp = parse_utc(w.upload_time) if w.upload_time else None
        if stamp is not None:
            times.append(stamp)
    return int(max(times).timestamp()) if times else 0


def build_epoch() -> int:
    """The time of this build: SOURCE_DATE_EPOCH when set, else now.

    The default sequence number and ``--expires`` count from it: a later build must
    supersede an earlier one even when both lock the same newest wheel, and a bundle
    must not be born expired because its pins are old.
    """
    epoch = source_date_epoch()
    return epoch if epoch is not None else int(time.time())


def check_wheel_identity(filename: str, metadata: bytes) -> None:
    """Refuse a wheel whose METADATA is not the project and version its file name says.

    The bytes matched the lock's sha256, so a mismatch means the lock names the wrong
    file (edited by hand); pip would refuse the wheel on the isolated host anyway.
    """
    meta = read_core_metadata(metadata) if metadata else None
    meta_name, meta_version = (meta.name, meta.version) if meta else (None, None)
    holds = ((canonicalize_name(meta_name), version_or_none(meta_version))
             if meta_name and meta_version else None)
    if holds is None or holds != name_and_version(filename):
        found = f"the METADATA of {meta_name} {meta_version}" if meta_name else "no METADATA for it"
        raise LockFileError(f"{filename} is not what its name says: it holds {found} "
                            f"(the lock names the wrong file: edited by hand?)",
                            hint="run `wheelferry lock` again to write the lock directory anew")


def wheel_metadata(path: Path, filename: str) -> bytes:
    """The METADATA member of the wheel *filename*, stored at *path* (only its central directory is read)."""
    try:
        return read_wheel_metadata(path, parse_wheel_filename(filename)[0])
    except (MetadataError, InvalidWheelFilename):
        return b""


def fetch_sources(lock: Lock, index: IndexClient, warn: Callable[[str], None]) -> dict[str, tuple[str, ...]]:
    """Where else *index* offers each locked wheel: same file name, and no other sha256.

    ``build --lock DIR --index-url URL`` fetches from URL first (a mirror, or the same index
    with credentials the lock never holds); the bytes must still hash as the lock says.
    """
    wanted: dict[str, list[str]] = {}
    for filename in lock.wheels:
        found = name_and_version(filename)
        if found is not None:
            wanted.setdefault(str(found[0]), []).append(filename)
    index.prefetch(wanted)
    out: dict[str, tuple[str, ...]] = {}
    for project, filenames in sorted(wanted.items()):
        names = set(filenames)
        for dist in index.files(project, names.__contains__):
            locked = lock.wheels[dist.filename]
            other = dist.hashes.get("sha256")
            if other and other != locked.sha256:
                warn(f"{dist.filename}: {dist.source or 'a source'} offers a file of that name with "
                     f"sha256 {other}, the lock records {locked.sha256}; that copy is not used")
                continue
            out[dist.filename] = tuple(dict.fromkeys(out.get(dist.filename, ())
                                                     + (strip_credentials(dist.url),)))
    return out


def build_bundle(lock: Lock, session: requests.Session, cache_root: Path, opts: BuildOptions,
                 signer: Signer | None, sources: Mapping[str, tuple[str, ...]] | None = None) -> BuildResult:
    """Fetch every wheel of *lock*, write the bundle and the offline kit, sign and split them.

    *sources* (``fetch_sources``) puts more URLs per wheel file name ahead of the lock's own.
    """
    started = time.monotonic()
    extra = sources or {}
    wheels = [replace(w, urls=tuple(dict.fromkeys(extra.get(w.filename, ()) + w.urls)))
              for w in lock.wheels.values()]
    clean_stale_temporaries(cache_root / "wheels" / "partial")
    results = fetch_wheels(wheels, WheelCache(cache_root / "wheels"), session,
                           jobs=opts.jobs, progress=opts.progress)
    fetch_seconds = time.monotonic() - started
    paths = {r.wheel.filename: r.path for r in results}
    created = created_epoch(lock)
    metadata = {name: wheel_metadata(path, name) for name, path in paths.items()}
    for name, meta in metadata.items():
        check_wheel_identity(name, meta)
    licences = wheel_licences(paths, metadata)  # one resolution for the policy and the SBOM
    if opts.policy is not None:
        _check_wheel_policy(opts.policy, lock, licences)
    now = build_epoch()
    with _output_dir(opts.out_dir):
        return _write_outputs(lock, paths, licences, created, now, opts, signer,
                              fetch_summary(results), fetch_seconds)


def check_lock(lock: Lock, policy: Policy | None, advisories: Path | None) -> None:
    """What can be judged before any download: the advisory scan of *advisories* (its table
    and summary said), then *policy*'s package, age and advisory rules; a violation is exit 1.
    Licences are judged once the wheels are fetched."""
    from wheelferry.clikit import say, warn
    from wheelferry.offline.advisories import render_table, scan_findings, summary_lines
    from wheelferry.offline.policy import facts_from_lock, policy_report

    found: list[Finding] = []
    if advisories is not None:
        scan, found = scan_findings(advisories, {(p.name, p.version) for t in lock.targets for p in t.packages})
        if found:
            say(render_table(found, None))
        for line in summary_lines(scan, found):
            say(line)
    if policy is not None:
        report = policy_report(policy, facts_from_lock(lock), found, licences=False)
        for note in report.ignored:
            say(f"policy: {note}")
        for w in report.warnings:
            warn(f"policy: {w}")
        report.raise_if_failed()
        say(f"policy {policy.source}: the lock passes (package and age rules)")
        for note in report.skipped:
            say(f"policy: {note}")


def _check_wheel_policy(policy: Policy, lock: Lock, licences: Mapping[str, Licence]) -> None:
    """Judge the fetched wheels by every rule of *policy*; a violation (exit 1) comes before any bundle or signature."""
    from wheelferry.clikit import say, warn
    from wheelferry.offline.audit import wheel_facts
    from wheelferry.offline.policy import evaluate

    report = evaluate(policy, wheel_facts(lock, licences))
    for w in report.warnings:
        if w.rule != "release-age-unknown":  # said already when the lock was judged
            warn(f"policy: {w}")
    report.raise_if_failed()
    say(f"policy {policy.source}: the wheels pass (licence, package and age rules)")


@contextlib.contextmanager
def _output_dir(out_dir: Path) -> Iterator[None]:
    """Make *out_dir*; if it was made here and the build fails, remove it while still empty."""
    made = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(out_dir)
    try:
        yield
    except BaseException:
        if made:
            with contextlib.suppress(OSError):
                out_dir.rmdir()  # fails, and keeps it, once anything was written there
        raise


def _write_outputs(lock: Lock, paths: dict[str, Path], licences: Mapping[str, Licence], created: int,
                   now: int, opts: BuildOptions, signer: Signer | None, fetched: JSONObject,
                   fetch_seconds: float) -> BuildResult:
    """The bundle, its signature, the offline kit and its signature, the volumes."""
    stream = signer.stream() if signer is not None else None
    final_asc = opts.out_dir / f"{opts.name}{COMPRESSIONS.get(opts.compress, '.tar')}.asc"
    bundle_signature: list[bytes] = []
    try:
        bundle = write_bundle(
            opts.out_dir, name=opts.name, lock=lock, lock_files=render_lock_files(lock), wheel_paths=paths,
            sequence=opts.sequence if opts.sequence is not None else now, created=created,
            expires=now + int(opts.expires_days * 86400) if opts.expires_days else None,
            tool=f"wheelferry {__version__}", compress=opts.compress, approvals=opts.approvals,
            licences=licences, progress=opts.progress,
            tee=stream.feed if stream is not None else None,
            before_publish=(lambda tmp: _signed(stream, tmp, final_asc, bundle_signature))
            if stream is not None else None,
        )
    finally:
        if stream is not None and not bundle_signature:
            stream.abort()
    signatures: list[Path] = []
    if signer is not None:
        if bundle_signature:
            atomic_write(final_asc, bundle_signature[0], 0o644)
            signatures.append(final_asc)
        else:
            signatures.append(signer.sign(bundle.path))
    kit = write_offline_pyz(opts.out_dir / KIT_NAME)
    public_key = None
    if signer is not None:
        signatures.append(signer.sign(kit))
        if opts.export_key:
            public_key = export_public_key(signer.key, signer.gnupghome, opts.out_dir / f"{opts.name}.pub.asc")
    volumes = None
    if opts.split_size is not None:
        volumes = split_volumes(bundle.path, opts.split_size, signatures, signer.sign if signer else None)
    return BuildResult(bundle, kit, fetched, fetch_seconds, tuple(signatures), public_key, volumes)


def _signed(stream: StreamSigner, tmp: Path, asc: Path, out: list[bytes]) -> None:
    """The finished temporary tar's signature; an older signature beside the bundle goes first."""
    out.append(stream.finish(tmp, name=asc.name[: -len(".asc")]))
    asc.unlink(missing_ok=True)  # never a new tar beside the old tar's signature


def split_volumes(tar: Path, size: int, signatures: list[Path],
                  sign: Callable[[Path], Path] | None) -> JSONObject:
    """Cut the signed tar into volumes, sign their list, keep the tar's signature, drop the tar."""
    from wheelferry.offline.volumes import split_bundle

    list_path, vset = split_bundle(tar, size)
    if sign is not None:
        signatures.append(sign(list_path))
    tar.unlink()
    return {"list": str(list_path), **vset.to_json()}
