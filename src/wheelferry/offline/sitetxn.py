"""``install --python PY`` as a transaction: what the install replaces is kept aside, put back on failure.

Standard library only.  An existing interpreter's environment cannot be built
beside itself and switched in, so the install happens in place:

1. every file of a distribution the install replaces (its RECORD), every file
   that exists where a new wheel will write, and the bytecode of every module
   among them (recorded or written by an interpreter on import) is *moved* into
   a stash directory inside site-packages (one rename each, same file system),
   the move list in a journal in the state directory first (fsync'd);
2. the wheels are installed;
3. on success the stash is deleted; on any failure, and on SIGINT, SIGTERM or
   SIGHUP, what the install wrote is removed (the planned destinations, their
   bytecode, console scripts, directories that did not exist before) and the
   stash is moved back.  After SIGKILL or power loss the next install into the
   same interpreter undoes it first and says so, and only then reads what is
   installed (a half-written set is no measure of what to replace).

Paths written or stashed are confined to the interpreter's scheme directories.
"""

from __future__ import annotations

import contextlib
import email.parser
import glob
import json
import os
import shutil
import subprocess
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from packaging.utils import canonicalize_name

from wheelferry.errors import InstallError
from wheelferry.interrupt import SignalGuard as _SignalGuard
from wheelferry.interrupt import checkpoint
from wheelferry.jsontypes import JSONObject, JSONValue
from wheelferry.offline.txn import (
    _fsync_dir,
    _key,
    _path_lock,
    _say,
    _transactions_dir,
    _write_atomic,
    rollback_unless_committed,
)
from wheelferry.timestamps import utc_text

SCHEME_KEYS = ("purelib", "platlib", "headers", "scripts", "data")
STASH_PREFIX = ".wheelferry-stash-"
JOURNAL_VERSION = 1

_SCHEME_CODE = (
    "import json, os, sys, sysconfig\n"
    "names = sysconfig.get_scheme_names()\n"
    "venv = sys.prefix != getattr(sys, 'base_prefix', sys.prefix)\n"
    "s = 'venv' if venv and 'venv' in names else ('nt' if os.name == 'nt' else 'posix_prefix')\n"
    "v = {'base': sys.prefix, 'platbase': sys.prefix}\n"
    "p = sysconfig.get_paths(scheme=s, vars=v)\n"
    "inc = (os.path.join(sys.prefix, 'include', 'site', 'python%d.%d' % sys.version_info[:2]) if venv\n"
    "       else os.path.join(p['include'], 'site') if os.name == 'nt' else p['include'])\n"
    "import platform\n"
    "m = platform.machine().lower()\n"
    "kind = ('posix' if os.name != 'nt' else 'win-arm64' if m in ('arm64', 'aarch64')\n"
    "        else 'win-amd64' if sys.maxsize > 2**32 else 'win-ia32')\n"
    "print(json.dumps({'purelib': p['purelib'], 'platlib': p['platlib'], 'scripts': p['scripts'],"
    " 'data': p['data'], 'headers': inc, 'launcher': kind}))\n")


def local_launcher() -> str:
    """installer's script kind for an interpreter on this machine: ``posix`` or ``win-*``."""
    import platform
    import sys

    if os.name != "nt":
        return "posix"
    if platform.machine().lower() in ("arm64", "aarch64"):
        return "win-arm64"
    return "win-amd64" if sys.maxsize > 2**32 else "win-ia32"


def interpreter_scheme(python: str, run: Callable[..., Any] = subprocess.run) -> JSONObject:  # Any: subprocess.run
    """Where *python* installs wheels (purelib, platlib, scripts, data, headers), as pip does,
    and its script ``launcher`` kind for the engine (``posix``, ``win-amd64``, ...)."""
    return ask_scheme(python, _SCHEME_CODE, run)


def ask_scheme(python: str, code: str, run: Callable[..., Any] = subprocess.run) -> JSONObject:  # Any: subprocess.run
    """Run *code* (which prints the scheme as JSON) with *python* in isolated mode; its answer."""
    try:
        proc = run([python, "-I", "-c", code], capture_output=True, text=True, check=False,
                   stdin=subprocess.DEVNULL)
    except OSError as exc:
        raise InstallError(f"cannot run {python}: {exc.strerror or exc}") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        raise InstallError(f"{python} could not tell its install scheme: {last}")
    data: JSONObject = json.loads(proc.stdout)
    return data


# ------------------------------------------------------------------ what a wheel writes


@dataclass
class WheelPlan:
    """The files one wheel will put into the scheme (absolute paths), and its .py sources."""

    filename: str
    files: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)


def _inside(path: str, roots: Iterable[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def plan_wheel(wheel: Path, scheme: Mapping[str, JSONValue]) -> WheelPlan:
    """Where every member of *wheel* goes, plus the console scripts its entry points make."""
    plan = WheelPlan(wheel.name)
    roots = [os.path.abspath(scheme[k]) for k in SCHEME_KEYS]
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if not n.endswith("/")]
        infos = {n.split("/", 1)[0] for n in names if n.split("/", 1)[0].endswith(".dist-info")}
        if len(infos) != 1:
            raise InstallError(f"{wheel.name}: not one .dist-info directory in the wheel")
        info = infos.pop()
        meta = email.parser.BytesHeaderParser().parsebytes(zf.read(f"{info}/WHEEL"))
        purelib = str(meta.get("Root-Is-Purelib", "true")).strip().lower() == "true"
        project = email.parser.BytesHeaderParser().parsebytes(zf.read(f"{info}/METADATA")).get("Name", "")
        data_dir = info[: -len(".dist-info")] + ".data"
        try:
            entry_points = zf.read(f"{info}/entry_points.txt").decode("utf-8")
        except KeyError:
            entry_points = ""
    root = os.path.abspath(scheme["purelib" if purelib else "platlib"])
    for n in names:
        top, _, rest = n.partition("/")
        if top == data_dir:
            key, _, rel = rest.partition("/")
            if key not in SCHEME_KEYS or not rel:
                raise InstallError(f"{wheel.name}: unknown .data directory {key!r}")
            base = os.path.abspath(scheme[key])
            if key == "headers":
                base = os.path.join(base, project)
            dest = os.path.normpath(os.path.join(base, rel))
        else:
            dest = os.path.normpath(os.path.join(root, n))
        if not _inside(dest, roots):
            raise InstallError(f"{wheel.name}: member {n} would be written outside the environment")
        plan.files.append(dest)
        if dest.endswith(".py") and _inside(dest, [root]):
            plan.sources.append(dest)
    for dest in ("INSTALLER", "REQUESTED", "direct_url.json", "RECORD"):
        plan.files.append(os.path.join(root, info, dest))
    exe = ".exe" if str(scheme.get("launcher", "posix")).startswith("win") else ""
    section = ""
    for line in entry_points.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line.strip("[]").strip()
        elif "=" in line and section in ("console_scripts", "gui_scripts"):
            name = line.split("=", 1)[0].strip()
            plan.files.append(os.path.join(os.path.abspath(scheme["scripts"]), name + exe))
    return plan


def _bytecode(source: str, partial: bool = False) -> list[str]:
    """The bytecode files of *source* that exist (any interpreter, any optimisation level);
    *partial*: also the temporary files of a write the kill interrupted (``X.pyc.<number>``)."""
    stem = os.path.join(glob.escape(os.path.dirname(source)), "__pycache__",
                        glob.escape(os.path.splitext(os.path.basename(source))[0]))
    found = glob.glob(stem + ".*.pyc")
    if partial:
        found += [p for p in glob.glob(stem + ".*.pyc.*") if p.rsplit(".", 1)[1].isdigit()]
    return found


def record_files(dist_info: Path, roots: Sequence[str]) -> list[str]:
    """The files an installed distribution's RECORD names that exist (and the dist-info's own)."""
    base = dist_info.parent
    out: list[str] = []
    import csv

    try:
        rows = list(csv.reader((dist_info / "RECORD").read_text(encoding="utf-8").splitlines()))
    except (OSError, UnicodeDecodeError, csv.Error):  # missing or unreadable: only the dist-info is known
        rows = []
    for row in rows:
        if not row or not row[0]:
            continue
        p = os.path.normpath(os.path.join(base, row[0]))
        if _inside(p, roots) and os.path.lexists(p) and not os.path.isdir(p):
            out.append(p)
    for f in dist_info.rglob("*"):
        if not f.is_dir() and str(f) not in out:
            out.append(str(f))
    return out


def find_dist_info(site_dirs: Iterable[str], name: str) -> list[Path]:
    """The installed ``.dist-info`` directories of the distribution *name*."""
    want = canonicalize_name(name)
    found = []
    for d in dict.fromkeys(site_dirs):
        for info in sorted(Path(d).glob("*.dist-info")):
            try:
                meta = email.parser.BytesHeaderParser().parsebytes((info / "METADATA").read_bytes())
            except OSError:
                continue
            if canonicalize_name(str(meta.get("Name", ""))) == want:
                found.append(info)
    return found


# ------------------------------------------------------------------ the transaction


class SiteTransaction:
    """One in-place install into an interpreter's scheme, undoable until :meth:`commit`."""

    def __init__(self, python: str, scheme: Mapping[str, JSONValue], guard: _SignalGuard, journal_file: Path) -> None:
        self.python, self.guard, self.journal_file = python, guard, journal_file
        self.scheme = {k: os.path.abspath(scheme[k]) for k in SCHEME_KEYS}
        self.roots = list(self.scheme.values())
        self.stash = Path(self.scheme["purelib"]) / f"{STASH_PREFIX}{os.getpid()}-{os.urandom(3).hex()}"
        self.moves: list[tuple[str, str]] = []  # (original path, its name in the stash)
        self.planned: list[str] = []  # files the install may write
        self.sources: list[str] = []  # .py among them (their bytecode goes too)
        self.new_dirs: list[str] = []  # directories that did not exist before the install
        self.committed = False
        self.recovered: str | None = None

    # -- journal
    def _journal(self, phase: str) -> None:
        data = {"version": JOURNAL_VERSION, "python": self.python, "pid": os.getpid(), "phase": phase,
                "stash": str(self.stash), "moves": self.moves, "planned": self.planned,
                "sources": self.sources, "new_dirs": self.new_dirs, "roots": self.roots,
                "started": utc_text()}
        _write_atomic(self.journal_file, json.dumps(data, indent=1).encode())

    # -- before the install
    def prepare(self, replaced: Iterable[str], wheels: Iterable[Path]) -> None:
        """Plan *wheels*, then move aside the files of the *replaced* distributions and whatever
        sits where the wheels will write, so the install writes only into free places."""
        # Signals wait (a move is never cut in two); one that came is raised after the last move,
        # and the caller's undo puts everything back.
        with self.guard.held():
            self._prepare(replaced, wheels)

    def _prepare(self, replaced: Iterable[str], wheels: Iterable[Path]) -> None:
        for w in wheels:
            plan = plan_wheel(Path(w), self.scheme)
            self.planned += plan.files
            self.sources += plan.sources
        site_dirs = [self.scheme["purelib"], self.scheme["platlib"]]
        aside: list[str] = []
        for name in replaced:
            for info in find_dist_info(site_dirs, name):
                aside += record_files(info, self.roots)
        # The bytecode of every module removed or overwritten goes aside too, recorded or not (an
        # interpreter writes __pycache__ on import; compile overwrites it): an undo puts it back
        # as it was, a success leaves no stale bytecode of a module that is gone.
        modules = [p for p in aside if p.endswith(".py")] + self.sources
        aside += [b for s in modules for b in _bytecode(s)]
        aside += [p for p in self.planned if os.path.lexists(p) and not os.path.isdir(p)]
        aside = list(dict.fromkeys(aside))
        self.moves = [(p, f"{n:06d}") for n, p in enumerate(aside)]
        self._journal("stashing")
        if self.moves:
            self.stash.mkdir()
        emptied: set[str] = set()
        for p, name in self.moves:
            _move(p, self.stash / name)
            emptied.add(os.path.dirname(p))
        for d in sorted(emptied, key=len, reverse=True):
            _prune(d, self.roots)
        for p in [*self.planned, *self.scheme.values()]:
            d = os.path.dirname(p) if p not in self.scheme.values() else p
            top = None
            while not os.path.isdir(d) and _inside(d, self.roots + [os.path.dirname(r) for r in self.roots]):
                top = d
                d = os.path.dirname(d)
            if top is not None and top not in self.new_dirs:
                self.new_dirs.append(top)
        self._journal("installing")
        checkpoint("stashed")  # test hook: the old files are aside, nothing new is written yet

    # -- after
    def commit(self) -> None:
        """The install succeeded: drop the stash."""
        with self.guard.held():
            self._journal("committing")
            _fsync_dir(self.journal_file.parent)
            shutil.rmtree(self.stash, ignore_errors=True)
            self.journal_file.unlink(missing_ok=True)
            self.committed = True

    def rollback(self) -> None:
        """Remove what the install wrote and put the stash back."""
        undo(self.planned, self.sources, self.new_dirs, self.moves, self.stash, self.roots)
        self.journal_file.unlink(missing_ok=True)


def _move(src: str, dst: Path) -> None:
    try:
        os.rename(src, dst)
    except OSError:
        shutil.move(src, str(dst))


def _prune(d: str, roots: Sequence[str]) -> None:
    """Remove *d* and its parents while empty, never a scheme root itself."""
    while _inside(d, roots) and d not in roots:
        try:
            os.rmdir(d)
        except OSError:
            return
        d = os.path.dirname(d)


def undo(planned: Sequence[str], sources: Sequence[str], new_dirs: Sequence[str],
         moves: Sequence[Sequence[JSONValue]], stash: Path, roots: Sequence[str]) -> None:
    """Remove the planned files (and their bytecode, and new directories), restore the stash."""
    stashed = {str(m[0]): str(m[1]) for m in moves}
    for p in [*planned, *[b for s in sources for b in _bytecode(s, partial=True)]]:
        if p not in stashed or os.path.lexists(stash / stashed[p]):
            with contextlib.suppress(FileNotFoundError, IsADirectoryError, NotADirectoryError):
                os.unlink(p)
    for d in sorted(new_dirs, key=len, reverse=True):
        shutil.rmtree(d, ignore_errors=True)
    for orig, name in moves:
        src = stash / name
        if not os.path.lexists(src):
            continue  # never moved (or already back)
        os.makedirs(os.path.dirname(orig), exist_ok=True)
        if os.path.lexists(orig) and not os.path.isdir(orig):
            os.unlink(orig)
        _move(str(src), Path(orig))
    shutil.rmtree(stash, ignore_errors=True)


def _recover(journal_file: Path, python: str) -> str:
    try:
        data = json.loads(journal_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InstallError(f"the transaction journal {journal_file} is unreadable ({exc})",
                           hint=f"check {python}'s site-packages by hand, then delete the journal") from None
    stash = Path(data["stash"])
    if data.get("phase") == "committing":
        shutil.rmtree(stash, ignore_errors=True)
        what = "finished it"
    else:
        undo(data["planned"], data["sources"], data["new_dirs"], data["moves"], stash, data["roots"])
        what = "undid it (the environment holds what it had before)"
    journal_file.unlink(missing_ok=True)
    return (f"an earlier install into {python} (pid {data.get('pid')}) was interrupted at phase "
            f"{data.get('phase')}; {what}")


@contextlib.contextmanager
def site_transaction(python: str, scheme: Mapping[str, JSONValue], state_dir: Path) -> Iterator[SiteTransaction]:
    """Lock *python*'s environment, undo an interrupted earlier run, and yield a transaction.

    Leaving the block without :meth:`SiteTransaction.commit` (an error, a signal)
    undoes the install; a signal raises :class:`Interrupted` after the undo.
    """
    txdir = _transactions_dir(state_dir)
    key = "python-" + _key(Path(os.path.abspath(scheme["purelib"])))
    with _SignalGuard() as guard, _path_lock(txdir / f"{key}.lock", Path(python)):
        journal_file = txdir / f"{key}.json"
        recovered = None
        if journal_file.exists():
            with guard.held():
                recovered = _recover(journal_file, python)
            _say(recovered)
        txn = SiteTransaction(python, scheme, guard, journal_file)
        txn.recovered = recovered
        with rollback_unless_committed(txn, guard, undone=f"undone: {python}'s environment holds what it had before"):
            yield txn
