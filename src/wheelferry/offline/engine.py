"""The offline kit's install engine: wheels into a scheme with pypa/installer's parts, in parallel.

Standard library plus the kit's vendored ``installer`` and ``packaging``; no pip.

:func:`install_wheels` plans every wheel before it writes a byte: its WHEEL
version, its tags against the receiving interpreter's, every member's place in
the scheme (``.data/`` directories included) and its RECORD line; two wheels
that would write the same file, or a file that already exists, are refused.
Then the members are unpacked by a pool of threads (the biggest wheel split in
chunks, each thread with its own ``ZipFile``; zlib and hashlib release the
GIL), every member checked against its RECORD hash and size as it is written.
Console and GUI scripts come from installer's templates (Windows launchers
too), ``INSTALLER`` says ``wheelferry``.  Bytecode is compiled by N processes of
the receiving interpreter with the source path it will have at its final place,
and added to RECORD as pip does; RECORD is written last.  On any failure,
cancellation or signal, every file it wrote is removed again.

:func:`check_requirements` is what ``pip check`` does, with packaging and the
receiving interpreter's marker environment.
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import csv
import hashlib
import io
import os
import posixpath
import re
import subprocess
import sys
import threading
import zipfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from wheelferry.errors import InstallError
from wheelferry.offline.wheelcheck import ZIP_ERRORS

INSTALLER_NAME = "wheelferry"
SCHEMES = ("purelib", "platlib", "headers", "scripts", "data")
_BUF = 1 << 20
_CHUNK = 4 << 20  # compressed bytes per unpack task, at least


def _vendored() -> None:
    """Import the kit's pinned ``installer`` (never another copy), make ``packaging`` importable.

    Inside the kit both sit at its root; in a checkout they are under ``_vendor``,
    which is put first on the path only while installer is imported.
    """
    if "installer" not in sys.modules:
        from wheelferry.offline.probe import vendor_root

        root = vendor_root()
        sys.path.insert(0, root)
        try:
            import installer._core
            import installer.records
            import installer.scripts
            import installer.sources
            import installer.utils  # noqa: F401
        finally:
            sys.path.remove(root)
    try:
        import packaging  # noqa: F401
    except ImportError:
        from wheelferry.offline.probe import vendor_root

        sys.path.append(vendor_root())


def default_workers() -> int:
    """The CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class _Stop(Exception):
    """A worker saw the cancel flag."""


@dataclass
class _Member:
    info: zipfile.ZipInfo
    dest: str  # absolute path written now
    scheme: str
    algo: str  # RECORD's hash algorithm
    digest: str  # RECORD's urlsafe-b64 digest, unpadded
    size: int
    executable: bool
    shebang: bool  # a scripts/ file whose ``#!python`` line is rewritten


@dataclass
class _Wheel:
    path: Path
    name: str  # project name from METADATA
    version: str
    dist_info: str
    root_dir: str  # the scheme directory that holds the .dist-info
    members: list[_Member] = field(default_factory=list)
    generated: dict[str, bytes] = field(default_factory=dict)  # dest -> content (scripts, INSTALLER)
    rows: dict[str, tuple[str, str]] = field(default_factory=dict)  # dest -> (hash, size) for RECORD
    requires: list[str] = field(default_factory=list)

    @property
    def record_path(self) -> str:
        return os.path.join(self.root_dir, self.dist_info, "RECORD")

    @property
    def packed(self) -> int:
        return sum(m.info.compress_size for m in self.members)


def _b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def _refuse(wheel: Path, what: str) -> InstallError:
    return InstallError(f"{wheel.name}: {what}; refused, nothing was installed",
                        hint="the wheel is broken or was tampered with; rebuild the bundle")


def _plan(path: Path, scheme: Mapping[str, str], shebang_python: str, launcher: str,
          tags: frozenset[str] | None, requested: bool) -> _Wheel:
    _vendored()
    from installer._core import _determine_scheme, _process_WHEEL_file
    from installer.exceptions import InstallerError
    from installer.records import InvalidRecordEntry, parse_record_file
    from installer.scripts import Script
    from installer.sources import WheelFile
    from installer.utils import parse_entrypoints, parse_metadata_file

    from wheelferry.offline.hostmatch import wheel_tags

    if tags is not None:
        have = wheel_tags(path.name)
        if not have & tags:
            raise _refuse(path, f"its tags ({', '.join(sorted(have)) or 'none'}) do not fit this interpreter")
    try:
        with zipfile.ZipFile(path) as zf:
            source = WheelFile(zf)
            root_scheme = _process_WHEEL_file(source)
            dist_info = source.dist_info_dir
            meta = parse_metadata_file(source.read_dist_info("METADATA"))
            record_text = source.read_dist_info("RECORD")
            entry_points = (source.read_dist_info("entry_points.txt")
                            if "entry_points.txt" in source.dist_info_filenames else "")
            infos = zf.infolist()
            record = {}
            for row in parse_record_file(record_text.splitlines()):
                record[row[0]] = row
            wheel = _Wheel(path, str(meta.get("Name") or source.distribution),
                           str(meta.get("Version") or source.version), dist_info, scheme[root_scheme])
            wheel.requires = [str(r) for r in (meta.get_all("Requires-Dist") or [])]
            seen: set[str] = set()
            for info in infos:
                name = info.filename
                if name.endswith("/"):
                    continue
                if name in seen:
                    raise _refuse(path, f"it holds {name!r} twice")
                seen.add(name)
                parts = name.split("/")
                if name.startswith("/") or "\\" in name or ".." in parts or ":" in parts[0]:
                    raise _refuse(path, f"it holds {name!r}, a path outside the install")
                if name == f"{dist_info}/RECORD":
                    continue
                if name.startswith(f"{dist_info}/") and parts[-1] in ("RECORD.jws", "RECORD.p7s"):
                    continue
                if name.startswith(f"{dist_info}/") and parts[-1] in ("INSTALLER", "REQUESTED") \
                        and len(parts) == 2:
                    continue  # installation metadata is ours to write
                got = record.get(name)
                if got is None:
                    raise _refuse(path, f"{name} is not listed in its RECORD")
                row = got
                algo, _, digest = row[1].partition("=")
                if not digest or not row[2].isdigit() or algo not in hashlib.algorithms_available \
                        or algo in ("md5", "sha1"):
                    raise _refuse(path, f"its RECORD gives no usable hash and size for {name}")
                where, rel = _determine_scheme(name, source, root_scheme)
                dest = os.path.join(scheme[where], *rel.split("/"))
                if where == "headers":
                    dest = os.path.join(scheme["headers"], wheel.name, *rel.split("/"))
                mode = info.external_attr >> 16
                wheel.members.append(_Member(info, dest, where, algo, digest, int(row[2]),
                                             bool(mode & 0o111) or where == "scripts",
                                             where == "scripts"))
    except InstallError:
        raise
    except (InstallerError, InvalidRecordEntry, KeyError, UnicodeDecodeError, *ZIP_ERRORS) as exc:
        raise _refuse(path, _installer_text(exc)) from None
    try:
        for name, module, attr, section in parse_entrypoints(entry_points):
            script_name, data = Script(name, module, attr, section).generate(shebang_python,
                                                                             launcher)  # type: ignore[arg-type]
            wheel.generated[os.path.join(scheme["scripts"], script_name)] = data
    except Exception as exc:  # noqa: BLE001  (installer asserts on malformed entry points)
        raise _refuse(path, f"its entry_points.txt is malformed ({_installer_text(exc)})") from None
    base = os.path.join(wheel.root_dir, dist_info)
    wheel.generated[os.path.join(base, "INSTALLER")] = f"{INSTALLER_NAME}\n".encode()
    if requested:
        wheel.generated[os.path.join(base, "REQUESTED")] = b""
    # An entry point script takes the place of a .data/scripts file of the same name (as with pip).
    wheel.members = [m for m in wheel.members if m.dest not in wheel.generated]
    return wheel


def _installer_text(exc: BaseException) -> str:
    last = exc.args[-1] if exc.args else None
    text = (last if isinstance(last, str) else str(exc)).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def _shared_scripts(wheels: Sequence[_Wheel], scripts_dir: str) -> None:
    """A console or GUI script two wheels both declare (tensorflow and tensorboard both declare
    ``tensorboard``) is written once, as pip leaves it: by the wheel whose project has the
    script's name, else by the last one; the others' plans and RECORDs drop it."""
    by_dest: dict[str, list[_Wheel]] = {}
    for w in wheels:
        for dest in w.generated:
            if os.path.dirname(dest) == scripts_dir:
                by_dest.setdefault(os.path.normcase(dest), []).append(w)
    for key, owners in by_dest.items():
        if len(owners) < 2:
            continue
        stem = os.path.splitext(os.path.basename(key))[0]
        named = [w for w in owners if canonical(w.name) == canonical(stem)]
        keep = named[0] if named else owners[-1]
        for w in owners:
            if w is not keep:
                for dest in [d for d in w.generated if os.path.normcase(d) == key]:
                    del w.generated[dest]


def canonical(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _conflicts(wheels: Sequence[_Wheel], replace: bool) -> None:
    owner: dict[str, _Wheel] = {}
    for w in wheels:
        for dest in [m.dest for m in w.members] + [*w.generated, w.record_path]:
            key = os.path.normcase(os.path.normpath(dest))
            other = owner.setdefault(key, w)
            if other is not w:
                raise InstallError(f"{other.path.name} and {w.path.name} both write {dest}; refused, "
                                   f"nothing was installed",
                                   hint="two packages of the lock ship the same file; exclude one")
            if not replace and os.path.lexists(dest):
                raise InstallError(f"{w.path.name} would overwrite {dest}, which exists; refused, "
                                   f"nothing was installed")


class _Unpacker:
    """Write the members of many wheels with a thread pool; remember every file written."""

    def __init__(self, wheels: Sequence[_Wheel], workers: int, cancelled: Callable[[], bool],
                 replace: bool) -> None:
        self.wheels = wheels
        self.workers = workers
        self.cancelled = cancelled
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.written: list[str] = []
        self.local = threading.local()
        self.opened: list[zipfile.ZipFile] = []
        self.mode = "wb" if replace else "xb"
        self.umask = _umask()
        biggest = max(wheels, key=lambda w: w.packed, default=None)
        self.biggest = biggest
        self.biggest_done = 0
        self.paused = False

    def should_stop(self) -> bool:
        return self.stop.is_set() or self.cancelled()

    def _zip(self, path: Path) -> zipfile.ZipFile:
        cache = getattr(self.local, "zips", None)
        if cache is None:
            cache = self.local.zips = {}
        zf = cache.get(path)
        if zf is None:
            zf = cache[path] = zipfile.ZipFile(path)
            with self.lock:
                self.opened.append(zf)
        return zf

    def tasks(self) -> list[tuple[_Wheel, list[_Member]]]:
        """Chunks of members, biggest wheel first; a big wheel is split so all workers share it."""
        total = sum(w.packed for w in self.wheels)
        size = max(_CHUNK, total // max(1, self.workers * 4))
        out = []
        for w in sorted(self.wheels, key=lambda w: -w.packed):
            chunk: list[_Member] = []
            got = 0
            for m in sorted(w.members, key=lambda m: m.info.header_offset):
                chunk.append(m)
                got += m.info.compress_size
                if got >= size:
                    out.append((w, chunk))
                    chunk, got = [], 0
            if chunk:
                out.append((w, chunk))
        return out

    def run_task(self, wheel: _Wheel, members: list[_Member]) -> None:
        zf = self._zip(wheel.path)
        for m in members:
            if self.should_stop():
                raise _Stop
            self._write(wheel, zf, m)
            if wheel is self.biggest:
                self._progress()

    def _progress(self) -> None:
        from wheelferry.interrupt import checkpoint

        assert self.biggest is not None
        with self.lock:
            self.biggest_done += 1
            pause = not self.paused and self.biggest_done * 2 >= len(self.biggest.members)
            self.paused = self.paused or pause
        if pause:
            checkpoint("unpack")  # test hook: the biggest wheel is half unpacked

    def _write(self, wheel: _Wheel, zf: zipfile.ZipFile, m: _Member) -> None:
        try:
            self._unpack(wheel, zf, m)
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, EOFError, zlib.error) as exc:
            raise _refuse(wheel.path, f"its member {m.info.filename} cannot be read ({exc})") from None

    def _unpack(self, wheel: _Wheel, zf: zipfile.ZipFile, m: _Member) -> None:
        check = hashlib.new(m.algo)
        mine = check if m.algo == "sha256" else hashlib.sha256()
        size = 0
        with zf.open(m.info) as src:
            if m.shebang:  # scripts are small: rewrite the ``#!python`` line in memory
                data = src.read()
                check.update(data)
                size = len(data)
                self._verify(wheel, m, check, size)
                from installer.utils import fix_shebang

                with fix_shebang(io.BytesIO(data), self.shebang_python) as fixed:
                    data = fixed.read()
                self._create(m.dest, data)
                wheel.rows[m.dest] = (f"sha256={_b64(hashlib.sha256(data).digest())}", str(len(data)))
            else:
                with self._open(m.dest) as out:
                    while True:
                        buf = src.read(_BUF)
                        if not buf:
                            break
                        check.update(buf)
                        if mine is not check:
                            mine.update(buf)
                        size += len(buf)
                        if size > m.size:
                            break
                        out.write(buf)
                        if self.stop.is_set():
                            raise _Stop
                self._verify(wheel, m, check, size)
                wheel.rows[m.dest] = (f"sha256={_b64(mine.digest())}", str(size))
        if m.executable:
            os.chmod(m.dest, 0o777 & ~self.umask)

    shebang_python = ""

    def _verify(self, wheel: _Wheel, m: _Member, check: Any, size: int) -> None:
        if size != m.size or _b64(check.digest()) != m.digest:
            raise _refuse(wheel.path, f"its RECORD lies about {m.info.filename} (RECORD: {m.algo}="
                                      f"{m.digest}, {m.size} bytes; the file differs)")

    def _open(self, dest: str) -> Any:
        f = open(dest, self.mode)  # noqa: SIM115
        with self.lock:
            self.written.append(dest)
        return f

    def _create(self, dest: str, data: bytes) -> None:
        with self._open(dest) as f:
            f.write(data)

    def close(self) -> None:
        for zf in self.opened:
            zf.close()


def _umask() -> int:
    if os.name == "nt":
        return 0
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _run_pool(fn: Callable[..., Any], jobs: Sequence[tuple[Any, ...]], workers: int,
              stop: threading.Event) -> list[Any]:
    """Run *fn* over *jobs* on threads; the first error (or a signal in this thread) stops the rest."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(workers, len(jobs) or 1)))
    futures = [pool.submit(fn, *job) for job in jobs]
    try:
        results = []
        for fut in concurrent.futures.as_completed(futures):
            results.append(fut.result())
        return results
    except BaseException:
        stop.set()
        for fut in futures:
            fut.cancel()
        raise
    finally:
        pool.shutdown(wait=True)


# Runs in the receiving interpreter (standard library only): compile each source named on stdin
# as pip does (compileall.compile_file, force, quiet), recording the path it will have at its final
# place; print the bytecode files made.
_COMPILE = r"""
import compileall, importlib.util, os, sys, warnings
warnings.filterwarnings("ignore")
items = sys.stdin.buffer.read().split(b"\0")
out = sys.stdout.buffer
sys.stdout = open(os.devnull, "w")
for i in range(0, len(items) - 1, 2):
    src, ddir = os.fsdecode(items[i]), os.fsdecode(items[i + 1])
    if compileall.compile_file(src, ddir=ddir, force=True, quiet=2):
        out.write(os.fsencode(importlib.util.cache_from_source(src)) + b"\0")
out.flush()
"""


def _compile(python: str, sources: list[str], moved: tuple[str, str] | None, workers: int,
             cancelled: Callable[[], bool]) -> list[str]:
    """Compile *sources* with N processes of *python*; returns the .pyc files written."""
    from wheelferry.interrupt import checkpoint

    if not sources:
        return []
    n = max(1, min(workers, (len(sources) + 99) // 100))
    shares: list[list[str]] = [[] for _ in range(n)]
    loads = [0] * n
    for src in sorted(sources, key=lambda s: -os.path.getsize(s)):
        i = loads.index(min(loads))
        shares[i].append(src)
        loads[i] += os.path.getsize(src) + 2000

    def final_dir(src: str) -> str:
        d = os.path.dirname(src)
        if moved is not None and (d == moved[0] or d.startswith(moved[0] + os.sep)):
            d = moved[1] + d[len(moved[0]):]
        return d

    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    procs = []
    try:
        for _share in shares:
            procs.append(subprocess.Popen([python, "-I", "-S", "-c", _COMPILE], stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env))
    except OSError as exc:
        for p in procs:
            p.kill()
        raise InstallError(f"cannot run {python} to compile bytecode: {exc.strerror or exc}") from None
    payloads = [b"".join(os.fsencode(s) + b"\0" + os.fsencode(final_dir(s)) + b"\0" for s in share)
                for share in shares]
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=n)
    try:
        futures = [pool.submit(p.communicate, data) for p, data in zip(procs, payloads)]
        checkpoint("compile")  # test hook: bytecode is being compiled
        pending = set(futures)
        while pending:
            if cancelled():
                raise _Stop
            _done, pending = concurrent.futures.wait(pending, timeout=0.1)
        made: list[str] = []
        for p, fut in zip(procs, futures):
            out, err = fut.result()
            if p.returncode != 0:
                last = (err.decode(errors="replace").strip().splitlines() or [f"exit code {p.returncode}"])[-1]
                raise InstallError(f"could not compile bytecode with {python}: {last}")
            made += [os.fsdecode(x) for x in out.split(b"\0") if x]
        return made
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        pool.shutdown(wait=True)
        for p in procs:
            p.wait()


def install_wheels(wheels: Sequence[Path], scheme: Mapping[str, str], python: str, *,
                   shebang: str | None = None, moved: tuple[Path, Path] | None = None,
                   compile: bool = True, workers: int | None = None, launcher: str = "posix",
                   tags: Iterable[str] | None = None, replace: bool = False, requested: bool = True,
                   cancelled: Callable[[], bool] = lambda: False) -> list[Path]:
    """Install *wheels* into *scheme* ({purelib, platlib, headers, scripts, data: directory}).

    *python* is the receiving interpreter (it compiles the bytecode); *shebang*
    the interpreter scripts name (default *python*).  *moved* = (built_at,
    lives_at): the tree is built at built_at and will be renamed to lives_at,
    so bytecode records its source under lives_at.  *tags*: the interpreter's
    supported wheel tags; a wheel with none of them is refused.  *launcher* is
    installer's script kind (``posix``, ``win-amd64``, ...).  *replace*: files
    that exist are overwritten (else refused).  Headers go to
    ``headers/<project>/`` as pip puts them.  Returns every file written.  On
    any error or when *cancelled()* turns true, what was written is removed again.
    """
    workers = workers or default_workers()
    tagset = frozenset(tags) if tags is not None else None
    scheme = {k: os.path.abspath(scheme[k]) for k in SCHEMES}
    if os.path.realpath(scheme["platlib"]) == os.path.realpath(scheme["purelib"]):
        scheme["platlib"] = scheme["purelib"]  # lib64 -> lib in a venv: one directory, one name
    plans = [_plan(Path(w), scheme, shebang or python, launcher, tagset, requested) for w in wheels]
    _shared_scripts(plans, scheme["scripts"])
    _conflicts(plans, replace)
    dirs = sorted({os.path.dirname(d) for w in plans for d in [*(m.dest for m in w.members), *w.generated]})
    made_dirs = []
    unpacker = _Unpacker(plans, workers, cancelled, replace)
    unpacker.shebang_python = shebang or python
    try:
        for d in dirs:
            if not os.path.isdir(d):
                missing = []
                p = d
                while not os.path.isdir(p):
                    missing.append(p)
                    p = os.path.dirname(p)
                os.makedirs(d, exist_ok=True)
                made_dirs += missing
        for w in plans:
            for dest, data in w.generated.items():
                unpacker._create(dest, data)
                w.rows[dest] = (f"sha256={_b64(hashlib.sha256(data).digest())}", str(len(data)))
                if dest.startswith(scheme["scripts"] + os.sep):
                    os.chmod(dest, 0o777 & ~unpacker.umask)
        try:
            _run_pool(unpacker.run_task, unpacker.tasks(), workers, unpacker.stop)
        except _Stop:
            raise InstallError("the install was cancelled") from None
        finally:
            unpacker.close()
        if compile:
            owner = {m.dest: w for w in plans for m in w.members
                     if m.scheme in ("purelib", "platlib") and m.dest.endswith(".py")}
            mv = (str(moved[0]), str(moved[1])) if moved is not None else None
            try:
                pycs = _compile(python, sorted(owner), mv, workers, cancelled)
            except _Stop:
                raise InstallError("the install was cancelled") from None
            unpacker.written += pycs
            by_src = {os.path.join(os.path.dirname(os.path.dirname(p)),
                                   os.path.basename(p).split(".", 1)[0] + ".py"): p for p in pycs}
            jobs = [(owner[src], pyc) for src, pyc in by_src.items() if src in owner]
            _run_pool(_hash_into, jobs, workers, unpacker.stop)
        for w in plans:
            _write_record(w, unpacker)
        return [Path(p) for p in unpacker.written]
    except BaseException:
        unpacker.stop.set()
        for p in reversed(unpacker.written):
            with contextlib.suppress(OSError):
                os.unlink(p)
        for p in [os.path.join(os.path.dirname(x), "__pycache__") for x in owner_sources(plans)]:
            _rmdir(p)
        for d in sorted(made_dirs, key=len, reverse=True):
            _rmdir(d)
        raise


def owner_sources(plans: Sequence[_Wheel]) -> list[str]:
    return [m.dest for w in plans for m in w.members if m.dest.endswith(".py")]


def _rmdir(d: str) -> None:
    with contextlib.suppress(OSError):
        os.rmdir(d)


def _hash_into(wheel: _Wheel, path: str) -> None:
    with open(path, "rb") as f:
        data = f.read()
    wheel.rows[path] = (f"sha256={_b64(hashlib.sha256(data).digest())}", str(len(data)))


def _write_record(w: _Wheel, unpacker: _Unpacker) -> None:
    """RECORD: every file written for *w*, relative to the directory holding its .dist-info."""
    rows = []
    for dest, (digest, size) in w.rows.items():
        rel = os.path.relpath(dest, w.root_dir).replace(os.sep, "/")
        rows.append((rel, digest, size))
    rows.append((posixpath.join(w.dist_info, "RECORD"), "", ""))
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(sorted(rows))
    unpacker._create(w.record_path, out.getvalue().encode("utf-8"))


# ---------------------------------------------------------------- what pip check does


def installed_distributions(site_dirs: Iterable[Path]) -> dict[str, tuple[str, str, list[str]]]:
    """{canonical name: (name, version, Requires-Dist lines)} of the .dist-info dirs in *site_dirs*."""
    _vendored()
    from installer.utils import parse_metadata_file
    from packaging.utils import canonicalize_name

    found: dict[str, tuple[str, str, list[str]]] = {}
    for site in dict.fromkeys(Path(s) for s in site_dirs):
        for meta in sorted(site.glob("*.dist-info/METADATA")):
            try:
                msg = parse_metadata_file(meta.read_text(encoding="utf-8", errors="replace"))
            except OSError:
                continue
            name, version = msg.get("Name"), msg.get("Version")
            if name and version:
                found.setdefault(canonicalize_name(str(name)),
                                 (str(name), str(version), [str(r) for r in msg.get_all("Requires-Dist") or []]))
    return found


def check_requirements(site_dirs: Iterable[Path], markers: Mapping[str, str]) -> list[str]:
    """``pip check`` with packaging: one line per unmet requirement of the installed set, pip's words.

    Markers are judged for *markers* (the receiving interpreter's environment), no extras.
    """
    _vendored()
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name
    from packaging.version import InvalidVersion, Version

    dists = installed_distributions(site_dirs)
    env = {**markers, "extra": ""}
    problems = []
    for _key, (name, version, requires) in sorted(dists.items()):
        for text in requires:
            try:
                req = Requirement(text)
                if req.marker is not None and not req.marker.evaluate(env):
                    continue
            except (InvalidRequirement, ValueError, KeyError):
                problems.append(f"{name} {version} has an invalid requirement {text!r}.")
                continue
            have = dists.get(canonicalize_name(req.name))
            if have is None:
                problems.append(f"{name} {version} requires {req.name}, which is not installed.")
                continue
            try:
                ok = req.specifier.contains(Version(have[1]), prereleases=True)
            except InvalidVersion:
                ok = req.specifier.contains(have[1], prereleases=True)
            if not ok:
                problems.append(f"{name} {version} has requirement {req}, but you have {req.name} {have[1]}.")
    return problems


def venv_scheme(python: str, run: Callable[..., Any] = subprocess.run) -> dict[str, str]:
    """The install scheme of the virtual environment whose interpreter is *python* (as pip's).

    Headers go to ``<venv>/include/site/pythonX.Y`` (pip's place in a venv;
    :func:`install_wheels` adds the project name).
    """
    code = ("import json, os, sys, sysconfig\n"
            "names = sysconfig.get_scheme_names()\n"
            "s = 'venv' if 'venv' in names else ('nt' if os.name == 'nt' else 'posix_prefix')\n"
            "v = {'base': sys.prefix, 'platbase': sys.prefix}\n"
            "p = sysconfig.get_paths(scheme=s, vars=v)\n"
            "inc = os.path.join(sys.prefix, 'include', 'site', 'python%d.%d' % sys.version_info[:2])\n"
            "print(json.dumps({'purelib': p['purelib'], 'platlib': p['platlib'], 'scripts': p['scripts'],"
            " 'data': p['data'], 'headers': inc}))\n")
    from wheelferry.offline.sitetxn import ask_scheme

    return ask_scheme(python, code, run)

