"""The install transaction of ``--venv DIR``: build beside, switch in one step, journal every phase.

Standard library only (plus the kit's vendored packaging for PEP 440 order).

The new environment is built at a sibling ``DIR.wheelferry-<token>`` and made
valid for DIR itself (see :func:`relocate`), then switched in by one atomic
step: a ``rename`` when DIR does not exist yet, Linux's
``renameat2(RENAME_EXCHANGE)`` when it does (the old and the new directory
trade places), or ``os.replace`` of a symlink when DIR is a symlink (blue/green
layouts; the new environment then lives at its real path beside the link's
target).  Where the exchange is not supported, two renames are used and the
journal covers the gap.

A journal in the state directory (``transactions/<key>.json``, written with
fsync before every irreversible step) names the phase reached.  SIGINT, SIGTERM
and SIGHUP are turned into :class:`Interrupted`; before the switch that undoes
the build, during and after it the switch is finished first.  After SIGKILL or a
power loss the next run on that path reads the journal first and finishes
(when the new environment already is at DIR) or undoes it, and says which.  A
lock file keeps two runs off the same path.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import platform
import re
import secrets
import shutil
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from wheelferry.errors import InstallError, UsageError
from wheelferry.files import atomic_write
from wheelferry.interrupt import Interrupted, checkpoint
from wheelferry.interrupt import SignalGuard as _SignalGuard
from wheelferry.jsontypes import JSONObject, JSONValue
from wheelferry.offline.envchanges import (
    Changes,
    check_downgrades,
    compare_sets,
    installed_versions,
)
from wheelferry.offline.relocate import relocate
from wheelferry.timestamps import utc_text

JOURNAL_VERSION = 1


# ---------------------------------------------------------------- journal, lock


def _fsync_dir(path: Path) -> None:
    if os.name == "nt":
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    """A journal write: :func:`atomic_write` (on disk before it takes the name), then the
    directory synced, so the new name itself survives a power loss before the next step."""
    atomic_write(path, data)
    _fsync_dir(path.parent)


def _identity(path: Path) -> list[int] | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return [st.st_dev, st.st_ino]


@dataclass
class Journal:
    """The on-disk record of one transaction on one environment path."""

    file: Path
    data: JSONObject = field(default_factory=dict)

    def write(self, **updates: JSONValue) -> None:
        self.data.update(updates)
        _write_atomic(self.file, (json.dumps(self.data, indent=2, sort_keys=True) + "\n").encode())

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.file.unlink()
        _fsync_dir(self.file.parent)


def _transactions_dir(state_dir: Path) -> Path:
    d = state_dir / "transactions"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _key(path: Path) -> str:
    return hashlib.sha256(os.fsencode(str(path))).hexdigest()[:20]


@contextlib.contextmanager
def _path_lock(lock_file: Path, path: Path) -> Iterator[None]:
    """Hold an exclusive lock for *path*; another run on the same path is refused."""
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            if os.name == "nt":
                import msvcrt
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
            else:
                import fcntl
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip()
            raise InstallError(f"another wheelferry install into {path} is running (pid {holder or '?'})",
                               hint="wait for it to finish; nothing was changed") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)


# ---------------------------------------------------------------- the switch

_RENAME_EXCHANGE = 2
_SYS_RENAMEAT2 = {"x86_64": 316, "amd64": 316, "aarch64": 276, "arm64": 276, "i686": 353,
                  "i386": 353, "ppc64le": 357, "ppc64": 357, "s390x": 347, "armv7l": 382}
_AT_FDCWD = -100


def exchange(a: Path, b: Path) -> bool:
    """Atomically swap two existing paths (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return False
    fa, fb = os.fsencode(str(a)), os.fsencode(str(b))
    fn = getattr(libc, "renameat2", None)
    if fn is not None:
        fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        rc = fn(_AT_FDCWD, fa, _AT_FDCWD, fb, _RENAME_EXCHANGE)
    else:
        nr = _SYS_RENAMEAT2.get(platform.machine().lower())
        if nr is None:
            return False
        rc = libc.syscall(nr, _AT_FDCWD, fa, _AT_FDCWD, fb, _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # this kernel or file system cannot
        return False
    raise OSError(err, os.strerror(err), str(b))


# ---------------------------------------------------------------- leftovers


_VENV_PARTS = {"bin", "lib", "lib64", "include", "share", "Scripts", "Lib", "Include", "pyvenv.cfg",
               "etc", "man"}


def _looks_like_venv(path: Path) -> bool:
    if (path / "pyvenv.cfg").is_file():
        return True
    try:
        names = {p.name for p in path.iterdir()}
    except OSError:
        return False
    return names <= _VENV_PARTS  # a venv half removed by an earlier run (or empty)


def find_leftovers(final: Path, parent: Path | None = None) -> list[Path]:
    """What earlier runs left beside *final* (in *parent*): ``DIR.old-N`` venvs, ``DIR.wheelferry-*``.

    The environment *final* points to (itself, or a symlink's target) is never one.
    """
    parent, name = parent or final.parent, final.name
    keep_real = {os.path.realpath(final)}
    found = []
    try:
        entries = sorted(parent.iterdir())
    except OSError:
        return []
    for p in entries:
        if os.path.realpath(p) in keep_real or p.is_symlink():
            continue
        if p.name.startswith(f".{name}.wheelferry-link-"):
            found.append(p)
            continue
        if not p.is_dir():
            continue
        if p.name.startswith(f"{name}.wheelferry-") or (
                re.fullmatch(re.escape(name) + r"\.old-\d+", p.name) and _looks_like_venv(p)):
            found.append(p)
    return found


def _tree_size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, f)).st_size
    return total


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    else:
        shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------- the transaction


def _say(text: str) -> None:
    sys.stderr.write(f"note: {text}\n")
    sys.stderr.flush()


def _apply_accept(data: Mapping[str, JSONValue], state_dir: Path) -> None:
    acc = data.get("accept")
    if acc:
        from wheelferry.offline.state import record_accepted
        record_accepted(state_dir, acc["name"], int(acc["sequence"]), acc["manifest_sha256"],
                        bool(acc.get("force_older")))


def recover(final: Path, state_dir: Path, journal: Journal) -> str | None:
    """Finish or undo the interrupted transaction *journal* records; returns what was done."""
    d = journal.data
    staging = Path(d["staging"])
    aside = Path(d["aside"]) if d.get("aside") else None
    new_id = d.get("new_id")
    link = Path(d["link"]) if d.get("link") else None
    where = f"an earlier install into {final} (pid {d.get('pid', '?')}) was interrupted " \
            f"at phase {d.get('phase', '?')}"
    if d.get("mode") == "symlink":
        switched = new_id is not None and _identity(Path(os.path.realpath(final))) == new_id
    else:
        switched = new_id is not None and _identity(final) == new_id
    if switched:
        _apply_accept(d, state_dir)
        old = Path(d["old_target"]) if d.get("mode") == "symlink" and d.get("old_target") else (
            aside if d.get("mode") == "rename" else staging)
        if d.get("mode") != "new" and old is not None:
            _remove(old)
        if link is not None:
            _remove(link)
        journal.remove()
        msg = f"{where}; finished it: {final} holds the new environment"
    else:
        if d.get("mode") == "rename" and aside is not None and aside.exists() and not final.exists():
            os.rename(aside, final)
            _fsync_dir(final.parent)
        _remove(staging)
        if link is not None:
            _remove(link)
        journal.remove()
        state = "the environment it had before" if d.get("mode") != "new" else "nothing (it was new)"
        msg = f"{where}; undid it: {final} holds {state}"
    _say(msg)
    return msg


class VenvTransaction:
    """Build a venv beside *final* and switch it in atomically (see the module docstring).

    Use through :func:`venv_transaction`; build into :attr:`staging` so that the
    result is valid at :attr:`prefix` (the env's real path once committed), then
    call :meth:`commit`.
    """

    def __init__(self, final: Path, state_dir: Path, guard: _SignalGuard, journal: Journal) -> None:
        self.final = final
        self.state_dir = state_dir
        self.guard = guard
        self.journal = journal
        self.recovered: str | None = None
        self.leftovers_removed: list[str] = []
        self.changes: Changes | None = None
        self.mode = "new"
        self.link_target: Path | None = None
        if final.is_symlink():
            self.mode = "symlink"
            self.link_target = Path(os.path.realpath(final))
            base = self.link_target.parent
        elif final.exists():
            if not (final / "pyvenv.cfg").is_file():
                raise UsageError(f"{final} exists and is not a virtual environment; not replacing it",
                                 hint="pick a new directory or remove it yourself")
            self.mode = "exchange"
            base = final.parent
        else:
            base = final.parent
        self.made_dirs = []  # parents made for a new DIR, deepest first: removed again on rollback
        d = base
        while not d.exists():
            self.made_dirs.append(d)
            d = d.parent
        base.mkdir(parents=True, exist_ok=True)
        self.staging = base / f"{final.name}.wheelferry-{time.strftime('%Y%m%d%H%M%S')}-{secrets.token_hex(3)}"
        # Where the new environment will live: DIR itself, or (symlink) its own real path.
        self.prefix = self.staging if self.mode == "symlink" else final
        self.committed = False

    @property
    def before(self) -> dict[str, str]:
        """What the environment at the path holds now."""
        return installed_versions(self.final) if self.mode != "new" else {}

    def plan(self, wanted: Mapping[str, str], allow_downgrade: bool = False) -> Changes:
        """Compare the new set with the current one; refuse a downgrade unless allowed."""
        self.changes = compare_sets(self.before, wanted)
        check_downgrades(self.changes, allow_downgrade)
        return self.changes

    def accept_on_commit(self, name: str, sequence: int, manifest_sha256: str,
                         force_older: bool = False) -> None:
        """Record the bundle's sequence in the same step as the switch (recovery redoes it)."""
        self.journal.write(accept={"name": name, "sequence": sequence, "manifest_sha256": manifest_sha256,
                                   "force_older": force_older})

    def commit(self, *, bytecode: bool = True) -> None:
        """Switch the environment built at :attr:`staging` in, then remove the old one and leftovers."""
        if not self.staging.is_dir():
            raise InstallError(f"nothing was built at {self.staging}")
        if self.prefix != self.staging:
            relocate(self.staging, self.prefix, bytecode=bytecode)
        checkpoint("before-switch")
        with self.guard.held():
            self.journal.write(phase="switching", new_id=_identity(self.staging))
            old: Path | None = None
            if self.mode == "new":
                os.rename(self.staging, self.final)
            elif self.mode == "symlink":
                link = self.final.with_name(f".{self.final.name}.wheelferry-link-{secrets.token_hex(3)}")
                self.journal.write(link=str(link), old_target=str(self.link_target))
                os.symlink(self.staging, link, target_is_directory=True)
                os.replace(link, self.final)
                old = self.link_target
            elif exchange(self.staging, self.final):
                old = self.staging
            else:
                aside = self.final.with_name(f"{self.final.name}.wheelferry-old-{secrets.token_hex(3)}")
                self.journal.write(mode="rename", aside=str(aside))
                os.rename(self.final, aside)
                os.rename(self.staging, self.final)
                old = aside
            _fsync_dir(self.final.parent)
            self.committed = True
            self.journal.write(phase="switched")
            _apply_accept(self.journal.data, self.state_dir)
            checkpoint("after-switch")
            if old is not None:
                _remove(old)
            dirs = {self.final.parent} | {self.staging.parent}
            for p in [p for d in sorted(dirs) for p in find_leftovers(self.final, d)]:
                size = _tree_size(p)
                _remove(p)
                self.leftovers_removed.append(f"{p} ({size} bytes)")
            self.journal.remove()

    def rollback(self) -> None:
        """Remove what was built; the environment path was never touched before the switch."""
        _remove(self.staging)
        self.journal.remove()
        for d in self.made_dirs:
            try:
                d.rmdir()
            except OSError:
                break


class Committable(Protocol):
    """A transaction: :attr:`committed` once done, :meth:`rollback` undoes it before that."""

    committed: bool

    def rollback(self) -> None: ...


@contextlib.contextmanager
def rollback_unless_committed(txn: Committable, guard: _SignalGuard, *, undone: str,
                              finished: str = "") -> Iterator[None]:
    """Leaving the block without ``txn.committed`` (an error, a signal, a plain exit) rolls *txn* back.

    The rollback runs with signals held back.  An :class:`Interrupted` raised out of
    the block says *undone* when the rollback ran, and *finished* (when given) when
    the transaction had already committed.
    """
    try:
        yield
    except BaseException as exc:
        if not txn.committed:
            with guard.held():
                txn.rollback()
            if isinstance(exc, Interrupted):
                exc.outcome = undone
        elif finished and isinstance(exc, Interrupted):
            exc.outcome = finished
        raise
    if not txn.committed:
        with guard.held():
            txn.rollback()


@contextlib.contextmanager
def venv_transaction(final: Path, state_dir: Path, *, label: str = "") -> Iterator[VenvTransaction]:
    """Lock *final*, finish or undo an interrupted earlier run, and yield a fresh transaction.

    Leaving the block without :meth:`VenvTransaction.commit` (an error, a signal)
    undoes the build; a signal that arrives while committing waits for the
    commit and is raised after it.
    """
    final = Path(os.path.abspath(final))
    txdir = _transactions_dir(state_dir)
    key = _key(final)
    with _SignalGuard() as guard, _path_lock(txdir / f"{key}.lock", final):
        journal = Journal(txdir / f"{key}.json")
        recovered = None
        if journal.file.exists():
            try:
                journal.data = json.loads(journal.file.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise InstallError(f"the transaction journal {journal.file} is unreadable ({exc})",
                                   hint=f"check {final} and its siblings by hand, then delete the "
                                        f"journal") from None
            with guard.held():
                recovered = recover(final, state_dir, journal)
            journal = Journal(journal.file)
        txn = VenvTransaction(final, state_dir, guard, journal)
        txn.recovered = recovered
        journal.write(version=JOURNAL_VERSION, path=str(final), staging=str(txn.staging),
                      mode=txn.mode, phase="building", pid=os.getpid(), label=label,
                      started=utc_text())
        undone = f"undone: {final} " + ("holds the environment it had before"
                                        if txn.mode != "new" else "was not created")
        with rollback_unless_committed(txn, guard, undone=undone,
                                       finished=f"the new environment was already switched in at {final}; finished"):
            yield txn
