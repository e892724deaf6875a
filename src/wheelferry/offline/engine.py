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
import queue
import struct
import subprocess
import sys
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, TypeVar

from wheelferry.errors import InstallError
from wheelferry.offline.wheelcheck import ZIP_ERRORS

INSTALLER_NAME = "wheelferry"
SCHEMES = ("purelib", "platlib", "headers", "scripts", "data")
_BUF = 1 << 20  # bytes per read and per inflate step of one member
_TASK_BYTES = 4 << 20  # compressed bytes per unpack task, at least
_T = TypeVar("_T")
_H = TypeVar("_H", zipfile.ZipFile, io.FileIO)


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
    # csv.Error: a RECORD holding a NUL byte, which Python 3.9's csv refuses (3.11 reads it)
    except (InstallerError, InvalidRecordEntry, KeyError, UnicodeDecodeError, csv.Error, *ZIP_ERRORS) as exc:
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
    _vendored()
    from packaging.utils import canonicalize_name  # the kit's copy: importable after _vendored()

    by_dest: dict[str, list[_Wheel]] = {}
    for w in wheels:
        for dest in w.generated:
            if os.path.dirname(dest) == scripts_dir:
                by_dest.setdefault(os.path.normcase(dest), []).append(w)
    for key, owners in by_dest.items():
        if len(owners) < 2:
            continue
        stem = os.path.splitext(os.path.basename(key))[0]
        named = [w for w in owners if canonicalize_name(w.name) == canonicalize_name(stem)]
        keep = named[0] if named else owners[-1]
        for w in owners:
            if w is not keep:
                for dest in [d for d in w.generated if os.path.normcase(d) == key]:
                    del w.generated[dest]


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
        self.opened: list[zipfile.ZipFile | io.FileIO] = []
        self.mode = "wb" if replace else "xb"
        self.umask = _umask()
        biggest = max(wheels, key=lambda w: w.packed, default=None)
        self.biggest = biggest
        self.biggest_done = 0
        self.paused = False
        self.compiler: _Compiler | None = None
        self.compile_set: frozenset[str] = frozenset()

    def should_stop(self) -> bool:
        return self.stop.is_set() or self.cancelled()

    def _own(self, kind: str, path: Path, opener: Callable[[Path], _H]) -> _H:
        """This thread's own handle of *kind* on *path*, opened once (no position shared with another)."""
        cache: dict[Path, _H] = self.local.__dict__.setdefault(kind, {})
        handle = cache.get(path)
        if handle is None:
            handle = cache[path] = opener(path)
            with self.lock:
                self.opened.append(handle)
        return handle

    def _zip(self, path: Path) -> zipfile.ZipFile:
        return self._own("zips", path, zipfile.ZipFile)

    def _raw(self, path: Path) -> io.FileIO:
        """This thread's own unbuffered handle on *path*."""
        return self._own("raws", path, lambda p: io.FileIO(p, "rb"))

    def tasks(self) -> list[tuple[_Wheel, list[_Member]]]:
        """Chunks of members, the most compressed bytes first.

        A member as big as a chunk is a task of its own, so the one member that takes
        longest (TensorFlow's 1 GB library) starts at once instead of ending the
        unpack alone; the rest is cut by file order, so one big wheel is spread over
        all the workers.
        """
        total = sum(w.packed for w in self.wheels)
        size = max(_TASK_BYTES, total // max(1, self.workers * 4))
        out: list[tuple[int, int, _Wheel, list[_Member]]] = []
        for w in sorted(self.wheels, key=lambda w: -w.packed):
            chunk: list[_Member] = []
            got = 0
            for m in sorted(w.members, key=lambda m: m.info.header_offset):
                if m.info.compress_size >= size:
                    out.append((m.info.compress_size, len(out), w, [m]))
                    continue
                chunk.append(m)
                got += m.info.compress_size
                if got >= size:
                    out.append((got, len(out), w, chunk))
                    chunk, got = [], 0
            if chunk:
                out.append((got, len(out), w, chunk))
        out.sort(key=lambda t: (-t[0], t[1]))
        return [(w, members) for _n, _i, w, members in out]

    def run_task(self, wheel: _Wheel, members: list[_Member]) -> None:
        for m in members:
            if self.should_stop():
                raise _Stop
            self._write(wheel, m)
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

    def _write(self, wheel: _Wheel, m: _Member) -> None:
        try:
            self._unpack(wheel, m)
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, EOFError, zlib.error) as exc:
            raise _refuse(wheel.path, f"its member {m.info.filename} cannot be read ({exc})") from None
        if self.compiler is not None and m.dest in self.compile_set:
            self.compiler.submit(m.dest, m.size)

    def _chunks(self, wheel: _Wheel, m: _Member) -> Iterable[bytes]:
        """The member's bytes in pieces of at most _BUF, inflated here (stored and deflated members).

        Every byte is checked against RECORD's hash and size by the caller, so the
        zip's CRC-32 (a second pass over each byte) is not computed; other methods
        go through zipfile.
        """
        info = m.info
        if info.flag_bits & 0x1:
            raise RuntimeError("it is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            with self._zip(wheel.path).open(info) as src:
                yield from iter(lambda: src.read(_BUF), b"")
            return
        f = self._raw(wheel.path)
        f.seek(info.header_offset)
        head = f.read(30)
        if len(head) != 30 or head[:4] != b"PK\x03\x04":
            raise zipfile.BadZipFile("bad local file header")
        name_len, extra_len = struct.unpack("<HH", head[26:30])
        name = f.read(name_len)
        want = info.orig_filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437")
        if name != want:
            raise zipfile.BadZipFile(f"file name in directory {info.orig_filename!r} and header {name!r} differ")
        f.seek(info.header_offset + 30 + name_len + extra_len)
        left = info.compress_size
        if info.compress_type == zipfile.ZIP_STORED:
            while left > 0:
                data = f.read(min(left, _BUF))
                if not data:
                    raise EOFError("the member ends early")
                left -= len(data)
                yield data
            return
        d = zlib.decompressobj(-15)
        while not d.eof:
            if d.unconsumed_tail:
                data = d.unconsumed_tail
            elif left > 0:
                data = f.read(min(left, _BUF))
                if not data:
                    raise EOFError("the member ends early")
                left -= len(data)
            else:
                data = b""
            out = d.decompress(data, _BUF)
            if out:
                yield out
            elif not data:
                raise EOFError("the member's compressed data ends early")

    def _unpack(self, wheel: _Wheel, m: _Member) -> None:
        check = hashlib.new(m.algo)
        mine = check if m.algo == "sha256" else hashlib.sha256()
        size = 0
        if m.shebang:  # scripts are small: rewrite the ``#!python`` line in memory
            data = b"".join(self._bounded(wheel, m))
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
                for buf in self._chunks(wheel, m):
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

    def _bounded(self, wheel: _Wheel, m: _Member) -> Iterable[bytes]:
        size = 0
        for buf in self._chunks(wheel, m):
            size += len(buf)
            yield buf
            if size > m.size:
                return

    shebang_python = ""

    def _verify(self, wheel: _Wheel, m: _Member, check: hashlib._Hash, size: int) -> None:
        if size != m.size or _b64(check.digest()) != m.digest:
            raise _refuse(wheel.path, f"its RECORD lies about {m.info.filename} (RECORD: {m.algo}="
                                      f"{m.digest}, {m.size} bytes; the file differs)")

    def _open(self, dest: str) -> IO[bytes]:
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


def _run_pool(fn: Callable[..., _T], jobs: Sequence[tuple[Any, ...]], workers: int,  # Any: fn's own arguments
              stop: threading.Event) -> list[_T]:
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


# Runs in the receiving interpreter (standard library only).  It names the bytecode file of a
# source first, then reads ``source NUL final-dir NUL`` pairs from stdin as they come and compiles
# each as pip does (compileall.compile_file, force, quiet), recording the path the source will have
# at its final place; after each it answers ``bytecode-path NUL`` (just NUL if nothing was made).
_COMPILE = r"""
import compileall, importlib.util, os, sys, warnings
warnings.filterwarnings("ignore")
out = sys.stdout.buffer
sys.stdout = open(os.devnull, "w")
out.write(os.fsencode(importlib.util.cache_from_source(os.path.abspath("_.py"))) + b"\0")
out.flush()
todo, rest = [], b""
while True:
    data = os.read(0, 1 << 16)
    if not data:
        break
    *items, rest = (rest + data).split(b"\0")
    todo += items
    while len(todo) >= 2:
        src, ddir = os.fsdecode(todo.pop(0)), os.fsdecode(todo.pop(0))
        ok = compileall.compile_file(src, ddir=ddir, force=True, quiet=2)
        out.write((os.fsencode(importlib.util.cache_from_source(src)) if ok else b"") + b"\0")
        out.flush()
"""


class _Compiler:
    """N processes of the receiving interpreter that compile sources while they are still being unpacked.

    :meth:`submit` hands over a source the moment it is written; the biggest waiting
    source goes next to whichever process has room (a few in flight each, so none
    idles and none hoards), as uv's pool of compile workers does.  :meth:`finish`
    waits for the rest and returns ``(source, bytecode, RECORD hash, size)`` of every
    bytecode file made; :meth:`abort` stops the processes and removes what they made.
    """

    IN_FLIGHT = 3

    def __init__(self, python: str, workers: int, moved: tuple[str, str] | None,
                 cancelled: Callable[[], bool]) -> None:
        self.python = python
        self.moved = moved
        self.cancelled = cancelled
        self.queue: queue.PriorityQueue[tuple[int, int, str | None]] = queue.PriorityQueue()
        self.count = 0
        self.lock = threading.Lock()
        self.done: list[tuple[str, str, str, str]] = []
        self.fed: list[str] = []
        self.failed: str | None = None
        self.stopping = False
        self.suffix = ""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        self.procs: list[subprocess.Popen[bytes]] = []
        self.errs: list[IO[bytes]] = []
        self.threads: list[threading.Thread] = []
        try:
            for _ in range(max(1, workers)):
                err = tempfile.TemporaryFile()  # noqa: SIM115
                self.errs.append(err)
                self.procs.append(subprocess.Popen([python, "-I", "-S", "-c", _COMPILE], stdin=subprocess.PIPE,
                                                   stdout=subprocess.PIPE, stderr=err, env=env, bufsize=0))
        except OSError as exc:
            self.abort()
            raise InstallError(f"cannot run {python} to compile bytecode: {exc.strerror or exc}") from None
        for p in self.procs:
            room = threading.Semaphore(self.IN_FLIGHT)
            sent: list[str] = []
            for fn in (self._feed, self._read):
                t = threading.Thread(target=fn, args=(p, room, sent), daemon=True)
                t.start()
                self.threads.append(t)

    def final_dir(self, src: str) -> str:
        d = os.path.dirname(src)
        if self.moved is not None and (d == self.moved[0] or d.startswith(self.moved[0] + os.sep)):
            d = self.moved[1] + d[len(self.moved[0]):]
        return d

    def submit(self, src: str, size: int) -> None:
        with self.lock:
            self.count += 1
            n = self.count
        self.queue.put((-size, n, src))

    def _feed(self, p: subprocess.Popen[bytes], room: threading.Semaphore, sent: list[str]) -> None:
        assert p.stdin is not None
        try:
            while True:
                room.acquire()
                item = self.queue.get()
                src = item[2]
                if src is None or self.stopping:
                    self.queue.put(item)  # the end: the other feeders see it too
                    break
                with self.lock:
                    sent.append(src)
                    self.fed.append(src)
                p.stdin.write(os.fsencode(src) + b"\0" + os.fsencode(self.final_dir(src)) + b"\0")
        except OSError:
            pass  # the process died: _read reports it
        finally:
            with contextlib.suppress(OSError):
                p.stdin.close()

    def _read(self, p: subprocess.Popen[bytes], room: threading.Semaphore, sent: list[str]) -> None:
        assert p.stdout is not None
        rest = b""
        first = True
        while True:
            data = p.stdout.read(1 << 16)
            if not data:
                break
            *answers, rest = (rest + data).split(b"\0")
            for a in answers:
                if first:
                    first = False
                    self.suffix = os.path.basename(os.fsdecode(a))[1:]  # ".cpython-311.pyc"
                    continue
                with self.lock:
                    src = sent.pop(0)
                room.release()
                if a:
                    pyc = os.fsdecode(a)
                    with open(pyc, "rb") as f:
                        blob = f.read()
                    row = (src, pyc, f"sha256={_b64(hashlib.sha256(blob).digest())}", str(len(blob)))
                    with self.lock:
                        self.done.append(row)
        if p.wait() != 0 or sent:
            with self.lock:
                if self.failed is None:
                    self.failed = f"exit code {p.returncode}"
                    i = self.procs.index(p)
                    self.errs[i].seek(0)
                    lines = self.errs[i].read().decode(errors="replace").strip().splitlines()
                    if lines:
                        self.failed = lines[-1]
            self.stopping = True
            self.queue.put((1 << 62, 0, None))
        room.release(self.IN_FLIGHT)  # a feeder waiting for room sees the end

    def finish(self) -> list[tuple[str, str, str, str]]:
        """Every source was submitted: wait for the rest (or the cancel flag), return what was made."""
        from wheelferry.interrupt import checkpoint

        self.queue.put((1 << 62, 0, None))
        checkpoint("compile")  # test hook: bytecode is being compiled
        for t in self.threads:
            while t.is_alive():
                if self.cancelled():
                    raise _Stop
                t.join(timeout=0.1)
        if self.failed is not None:
            raise InstallError(f"could not compile bytecode with {self.python}: {self.failed}")
        self._close()
        return self.done

    def _close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            for f in (p.stdin, p.stdout):
                if f is not None:
                    with contextlib.suppress(OSError):
                        f.close()
        for err in self.errs:
            err.close()

    def abort(self) -> list[str]:
        """Stop the processes; remove every bytecode file they made or may have been making."""
        self.stopping = True
        self.queue.put((1 << 62, 0, None))
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        for t in self.threads:
            t.join()
        self._close()
        removed = []
        if self.suffix:
            for src in self.fed:
                stem = os.path.splitext(os.path.basename(src))[0]
                pyc = os.path.join(os.path.dirname(src), "__pycache__", stem + self.suffix)
                with contextlib.suppress(OSError):
                    os.unlink(pyc)
                    removed.append(pyc)
        return removed


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
    owner = {m.dest: w for w in plans for m in w.members
             if m.scheme in ("purelib", "platlib") and m.dest.endswith(".py")} if compile else {}
    compiler = None
    try:
        if owner:  # the compilers start now and take each source as soon as it is written
            mv = (str(moved[0]), str(moved[1])) if moved is not None else None
            compiler = unpacker.compiler = _Compiler(python, workers, mv, cancelled)
            unpacker.compile_set = frozenset(owner)
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
            if compiler is not None:
                for src, pyc, digest, size in compiler.finish():
                    unpacker.written.append(pyc)
                    owner[src].rows[pyc] = (digest, size)
        except _Stop:
            raise InstallError("the install was cancelled") from None
        finally:
            unpacker.close()
        for w in plans:
            _write_record(w, unpacker)
        return [Path(p) for p in unpacker.written]
    except BaseException:
        unpacker.stop.set()
        if compiler is not None:
            compiler.abort()
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


def venv_scheme(python: str, run: Callable[..., Any] = subprocess.run) -> dict[str, str]:  # Any: subprocess.run
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

