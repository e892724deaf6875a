"""Locking: spec + targets -> resolved graphs -> the lock files, written atomically.

Writes ``wheelferry.lock.json`` (canonical), ``pylock.<id>.toml`` (PEP 751) and
``requirements.<id>.txt`` (pip hash-checking mode) per target.  Rendering is
pure and deterministic; only :func:`write_lock_dir` touches the disk.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import tomli_w
from packaging.pylock import Pylock, PylockValidationError
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from resolvelib import BaseReporter

from wheelferry import __version__
from wheelferry.clikit import sizes_text
from wheelferry.errors import LockFileError, ResolutionError, UsageError
from wheelferry.files import atomic_write, clean_stale_temporaries, temp_prefix
from wheelferry.finder import Candidate, IndexLike, MetadataLike, Req, wheels_for
from wheelferry.jsontypes import JSONObject
from wheelferry.lockfile import (
    LOCK_FILENAME,
    Lock,
    LockedPackage,
    LockedTarget,
    RemovedPackage,
    SpecRecord,
    WheelFile,
    loads_lock,
)
from wheelferry.pages import DistFile, name_and_version
from wheelferry.resolver import Resolution, resolve
from wheelferry.rules import Rule, apply_rules, load_rules
from wheelferry.spec import Spec
from wheelferry.target import Target, marker_environment
from wheelferry.timestamps import parse_utc
from wheelferry.urls import strip_credentials

if TYPE_CHECKING:
    from wheelferry.network import Network

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

Hasher = Callable[[DistFile], "tuple[str, int | None]"]
SizeOf = Callable[[DistFile], "int | None"]
Warn = Callable[[str], None]
# A resolvelib reporter per target (a progress bar), or None: given the target's id.
Progress = Callable[[str], AbstractContextManager["BaseReporter[Req, Candidate, str] | None"]]


@dataclass(frozen=True)
class TargetLock:
    """One target's resolution plus what the rules and the exclusions did to it."""

    target: Target
    resolution: Resolution
    notes: tuple[str, ...]
    removed: tuple[RemovedPackage, ...]
    warnings: tuple[str, ...] = ()


def _releases_in_range(index: IndexLike, req: Requirement) -> list[Version]:
    """The releases the index lists in *req*'s range, newest first (from file names alone)."""
    name = canonicalize_name(req.name)
    versions: set[Version] = set()

    def note(filename: str) -> bool:
        found = name_and_version(filename)
        if found is not None and found[0] == name:
            versions.add(found[1])
        return False  # the names say all that is needed: no file object is made

    index.files(req.name, note)
    return sorted(req.specifier.filter(versions), reverse=True)


def lock_target(
    spec: Spec,
    target: Target,
    index: IndexLike,
    metadata: MetadataLike,
    rules: Sequence[Rule],
    *,
    jobs: int = 8,
    reporter: BaseReporter[Req, Candidate, str] | None = None,
    size_of: SizeOf | None = None,
) -> TargetLock:
    """Resolve *spec* for one *target*, applying package rules and exclusions."""
    reqs = spec.parsed_requirements()
    clash = sorted({str(canonicalize_name(r.name)) for r in reqs} & set(spec.exclude))
    if clash:
        raise UsageError(f"{', '.join(clash)} is both requested and excluded")

    def expected(req: Requirement) -> list[Version]:
        return _releases_in_range(index, req)

    outcome = apply_rules(reqs, target, rules, expected)
    resolution = resolve(outcome.requirements, target, index, metadata, exclude=spec.exclude, jobs=jobs,
                         reporter=reporter, release_ok=outcome.release_ok)
    # A rule keyed on a release must see the release really chosen, not the one expected.
    picked = {n: Version(p.version) for n, p in resolution.packages.items()}

    def chosen(req: Requirement) -> list[Version]:
        version = picked.get(str(canonicalize_name(req.name)))
        return [version] if version is not None else []

    second = apply_rules(reqs, target, rules, chosen)
    if [str(r) for r in second.requirements] != [str(r) for r in outcome.requirements]:
        outcome = second
        resolution = resolve(outcome.requirements, target, index, metadata, exclude=spec.exclude, jobs=jobs,
                             release_ok=outcome.release_ok)
    removed = _removed_by_exclusion(outcome.requirements, target, index, metadata, resolution, jobs,
                                    outcome.release_ok, size_of or (lambda d: d.size))
    return TargetLock(target, resolution, outcome.notes, removed, _yanked_warnings(resolution))


def _yanked_warnings(resolution: Resolution) -> tuple[str, ...]:
    """PEP 592: a yanked release is taken only when pinned, and then said, with its reason (as uv does)."""
    out = []
    for p in resolution.packages.values():
        if p.dist.yanked is not None:
            why = f' (reason: "{p.dist.yanked}")' if p.dist.yanked else ""
            out.append(f"`{p.name}=={p.version}` is yanked{why}")
    return tuple(out)


def _removed_by_exclusion(reqs: Sequence[Requirement], target: Target, index: IndexLike,
                          metadata: MetadataLike, kept: Resolution, jobs: int,
                          release_ok: Mapping[str, Callable[[Version], bool]],
                          size_of: SizeOf) -> tuple[RemovedPackage, ...]:
    """What the exclusions kept out: a second resolution without them, compared with the first."""
    excluded_edges = [t for t in kept.trimmed if t.reason == "excluded"]
    if not excluded_edges:
        return ()
    try:
        full = resolve(reqs, target, index, metadata, jobs=jobs, release_ok=release_ok)
    except ResolutionError:
        names = {str(canonicalize_name(Requirement(t.requirement).name)): t for t in excluded_edges}
        return tuple(RemovedPackage(n, None, None, tuple(sorted({
            t.parent or "(requested)" for t in excluded_edges
            if canonicalize_name(Requirement(t.requirement).name) == n}))) for n in sorted(names))
    out = []
    for name, pkg in full.packages.items():
        if name in kept.packages:
            continue
        declared = sorted({e.parent or "(requested)" for e in pkg.required_by})
        out.append(RemovedPackage(name, pkg.version, size_of(pkg.dist), tuple(declared)))
    return tuple(sorted(out, key=lambda r: r.name))


def build_lock(
    spec: Spec,
    locked: Sequence[TargetLock],
    index: IndexLike,
    indexes: Iterable[str],
    hasher: Hasher,
    warn: Warn,
) -> Lock:
    """Assemble the canonical :class:`Lock`; every wheel appears once with every URL offering it."""
    wheels: dict[str, WheelFile] = {}
    targets = []
    for tl in locked:
        packages = []
        for name, pkg in sorted(tl.resolution.packages.items()):
            if pkg.dist.filename not in wheels:
                wheels[pkg.dist.filename] = _wheel_file(pkg.dist, index, hasher, warn)
            packages.append(LockedPackage(name, pkg.version, pkg.dist.filename, pkg.required_by,
                                          pkg.dependencies, pkg.extras))
        t = tl.target
        targets.append(LockedTarget(
            id=t.id, spec=t.spec, description=t.describe(), markers=marker_environment(t),
            requirements=tuple(tl.resolution.requirements), packages=tuple(packages),
            trimmed=tuple(tl.resolution.trimmed), removed=tl.removed, notes=tl.notes,
            tags=t.captured_tags,
        ))
    ids = [t.id for t in targets]
    if len(set(ids)) != len(ids):
        raise UsageError(f"two targets share the id {sorted({i for i in ids if ids.count(i) > 1})}")
    record = SpecRecord(spec.name, spec.requirements, tuple(t.spec for t in (tl.target for tl in locked)),
                        spec.exclude, spec.smoke)
    return Lock(record, tuple(strip_credentials(u) for u in indexes), tuple(targets), wheels,
                f"wheelferry {__version__}")


def _wheel_file(dist: DistFile, index: IndexLike, hasher: Hasher, warn: Warn) -> WheelFile:
    # The hasher gives the advertised sha256 (and the size, however learned), or hashes the
    # file from its one download.
    sha, size = hasher(dist)
    same = index.files_named(dist.name, dist.filename)
    urls = []
    for f in same:
        other = f.hashes.get("sha256")
        if other and other != sha:
            warn(f"{dist.filename} is offered with a different sha256 by {f.source}; that copy is ignored")
            continue
        urls.append(strip_credentials(f.url))
    if not urls:
        urls = [strip_credentials(dist.url)]
    return WheelFile(dist.filename, sha, size, tuple(dict.fromkeys(urls)), dist.requires_python,
                     dist.upload_time)


def lock_spec(spec: Spec, targets: Sequence[Target], net: Network, *, jobs: int, say: Warn, warn: Warn,
              progress: Progress | None = None) -> Lock:
    """Lock *spec* for each of *targets* through *net*'s index and metadata: the whole ``lock`` step.

    The index keeps only the files some target can use; the targets are resolved in
    turn (``progress(target id)`` may give a resolvelib reporter for each); files
    listed without a sha256 are hashed from one download each, side by side.  Says a
    line per target (packages, size, seconds) with its notes, warns once per distinct
    warning and about each ``--exclude`` that cut nothing.
    """
    net.index.retain(wheels_for(targets))
    rules = load_rules()
    locked, seconds = [], []
    for target in targets:
        started = time.monotonic()
        with (progress or _no_progress)(target.id) as reporter:
            locked.append(lock_target(spec, target, net.index, net.metadata, rules, jobs=jobs,
                                      reporter=reporter, size_of=net.metadata.size_of))
        seconds.append(time.monotonic() - started)
    net.metadata.prefetch_facts(p.dist for tl in locked for p in tl.resolution.packages.values()
                                if not p.dist.sha256)
    lock = build_lock(spec, locked, net.index, net.index_urls, net.hash_dist, warn)
    said: set[str] = set()
    for tl, took in zip(locked, seconds):
        sizes = [lock.wheels[p.dist.filename].size for p in tl.resolution.packages.values()]
        say(f"{tl.target.id}: {len(sizes)} packages, {sizes_text(sizes)} ({took:.1f} s)")
        for note in tl.notes:
            say(f"  note: {note}")
        for text in tl.warnings:
            if text not in said:
                said.add(text)
                warn(text)
    net.summarize_warnings()
    for name in unused_excludes(spec.exclude, lock):
        warn(f"--exclude {name}: nothing in any target's tree depends on it (misspelt?)")
    return lock


def _no_progress(label: str) -> contextlib.nullcontext[None]:
    return contextlib.nullcontext()


def unused_excludes(exclude: Iterable[str], lock: Lock) -> list[str]:
    """The names in *exclude* that cut nothing in any target: most likely misspelt."""
    cut = {canonicalize_name(Requirement(t.requirement).name)
           for target in lock.targets for t in target.trimmed if t.reason == "excluded"}
    return [name for name in exclude if canonicalize_name(name) not in cut]


def trim_report(lock: Lock) -> list[JSONObject]:
    """What exclusions removed per target, with sizes and who declared it (JSON-ready)."""
    out = []
    for t in lock.targets:
        removed = [r.to_json() for r in t.removed]
        if removed or any(e.reason == "excluded" for e in t.trimmed):
            sizes = [r.size for r in t.removed]
            out.append({"target": t.id, "removed": removed,
                        "saved-bytes": None if None in sizes else sum(s or 0 for s in sizes),
                        "saved": sizes_text(sizes),
                        "excluded-edges": [e.to_json() for e in t.trimmed if e.reason == "excluded"]})
    return out


def environment_marker(markers: Mapping[str, str]) -> str:
    """A PEP 508 marker naming the target environment (for pylock ``environments``)."""
    return (f'sys_platform == "{markers["sys_platform"]}" and platform_machine == '
            f'"{markers["platform_machine"]}" and python_version == "{markers["python_version"]}"')


def render_pylock(lock: Lock, target: LockedTarget) -> str:
    """PEP 751 ``pylock.<id>.toml`` for one target; checked by packaging.pylock before return."""
    packages = []
    for p in sorted(target.packages, key=lambda p: p.name):
        w = lock.wheels[p.wheel]
        wheel: dict[str, object] = {"name": w.filename, "url": w.urls[0], "hashes": {"sha256": w.sha256}}
        if w.size is not None:
            wheel["size"] = w.size
        up = parse_utc(w.upload_time) if w.upload_time else None
        if up is not None:
            wheel["upload-time"] = up
        entry: dict[str, object] = {"name": p.name, "version": p.version, "wheels": [wheel]}
        if p.dependencies:
            entry["dependencies"] = [{"name": d} for d in p.dependencies]
        packages.append(entry)
    doc = {
        "lock-version": "1.0",
        "environments": [environment_marker(target.markers)],
        "requires-python": f"=={target.markers['python_version']}.*",
        "created-by": "wheelferry",
        "packages": packages,
        "tool": {"wheelferry": {"target": target.id, "spec": target.spec}},
    }
    text = f"# wheelferry lock for {target.id} ({target.spec}); generated, do not edit\n" + tomli_w.dumps(doc)
    try:
        Pylock.from_dict(tomllib.loads(text))
    except PylockValidationError as exc:  # pragma: no cover - a bug, not a user error
        raise LockFileError(f"internal error: pylock for {target.id} does not validate: {exc}") from None
    return text


def render_requirements(lock: Lock, target: LockedTarget) -> str:
    """A pip hash-checking requirements file for one target."""
    lines = [
        f"# wheelferry lock for {target.id} ({target.spec}); generated, do not edit",
        f"# pip install --no-index --find-links WHEELS --require-hashes -r requirements.{target.id}.txt",
    ]
    if any(t.reason == "excluded" for t in target.trimmed):
        lines.append("# some dependencies were excluded on purpose: add --no-deps to that pip command")
    for p in sorted(target.packages, key=lambda p: p.name):
        lines.append(f"{p.name}=={p.version} \\\n    --hash=sha256:{lock.wheels[p.wheel].sha256}")
    return "\n".join(lines) + "\n"


def render_lock_files(lock: Lock) -> dict[str, bytes]:
    """Every file of a lock directory, by name."""
    files = {LOCK_FILENAME: lock.dumps().encode()}
    for t in lock.targets:
        files[f"pylock.{t.id}.toml"] = render_pylock(lock, t).encode()
        files[f"requirements.{t.id}.txt"] = render_requirements(lock, t).encode()
    return files


def write_lock_dir(out_dir: Path, files: Mapping[str, bytes]) -> None:
    """Write a lock directory atomically: a new directory is renamed into place whole."""
    out_dir = out_dir.resolve()
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{out_dir} exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / LOCK_FILENAME).exists():
        raise UsageError(f"{out_dir} exists and is not a lock directory; choose another -o")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(out_dir.parent)
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(out_dir.name), suffix=".tmp", dir=out_dir.parent))
    try:
        for name, data in sorted(files.items()):
            atomic_write(tmp / name, data, 0o644)  # on disk before the directory takes its name
        os.chmod(tmp, 0o755)
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
            os.replace(out_dir, old)
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_lock_dir(lock_dir: Path) -> Lock:
    """Read and validate ``wheelferry.lock.json`` from a lock directory."""
    path = lock_dir / LOCK_FILENAME
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise LockFileError(f"cannot read {path}: {exc.strerror}",
                            hint="pass the directory written by `wheelferry lock -o DIR`") from None
    lock = loads_lock(text, str(path))
    _check_companions(lock_dir, lock)
    return lock


_SHA256_IN_TEXT = re.compile(r"\b[0-9a-f]{64}\b")


def _check_companions(lock_dir: Path, lock: Lock) -> None:
    """The pylock and requirements files beside the lock must name exactly its wheels' sha256.

    ``lock`` writes all three from one resolution, so a difference means one was edited
    by hand (a swapped hash would otherwise be fetched and signed as if it were locked).
    """
    for t in lock.targets:
        expected = {lock.wheels[p.wheel].sha256 for p in t.packages}
        for name in (f"pylock.{t.id}.toml", f"requirements.{t.id}.txt"):
            try:
                text = (lock_dir / name).read_text(encoding="utf-8")
            except FileNotFoundError:
                continue
            except (OSError, UnicodeDecodeError) as exc:
                raise LockFileError(f"cannot read {lock_dir / name}: {exc}") from None
            found = set(_SHA256_IN_TEXT.findall(text))
            if found != expected:
                odd = sorted(found ^ expected)[0]
                raise LockFileError(
                    f"{name} and {LOCK_FILENAME} in {lock_dir} disagree about the wheels "
                    f"(sha256 {odd[:12]}... is in only one of them): edited by hand?",
                    hint="run `wheelferry lock` again to write the lock directory anew")
