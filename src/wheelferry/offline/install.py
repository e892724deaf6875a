"""Install a verified bundle on the isolated host: the matching lock target, with no index.

Standard library plus the kit's vendored libraries.

``--venv DIR`` replaces the environment atomically (offline/txn.py): the new
venv is made without pip beside DIR, the wheels are installed by the kit's own
engine (offline/engine.py: pypa/installer, parallel unpack and bytecode
compile), the requirements of the installed set checked with packaging (what
``pip check`` does) and smoke-tested there, then switched in by one rename; on
any failure or signal before the switch DIR is untouched.  Host pip is never
used for it.  ``--python PY`` installs into that interpreter's environment in
place with the same engine, as a transaction (offline/sitetxn.py): every file
the install replaces is moved aside first and put back on failure or a signal.

The shape is pypa/installer's, one level up: a source (:class:`BundleSource`,
the verified bundle's wheels of the chosen target) and a destination
(:class:`Destination`: :class:`NewVenv` or :class:`ExistingInterpreter`), which
the one flow (:func:`_install`) drives: plan, write, check, smoke-test, commit;
leaving the destination's transaction without the commit undoes it.

Speed without skipping a check: the interpreter is probed, and the new venv's
empty shell made (or the interpreter's scheme read), while the bundle is being verified.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from wheelferry.clikit import warn
from wheelferry.errors import InstallError, UsageError
from wheelferry.interrupt import SignalGuard, checkpoint
from wheelferry.jsontypes import JSONObject
from wheelferry.lockfile import LockedPackage, LockedTarget
from wheelferry.manifest import WHEELS_DIR
from wheelferry.offline.engine import (
    check_requirements,
    install_wheels,
    installed_distributions,
    venv_scheme,
)
from wheelferry.offline.envchanges import (
    Changes,
    check_downgrades,
    compare_sets,
    installed_versions,
)
from wheelferry.offline.hostmatch import Host, capture_drift, choose_target, probe_host
from wheelferry.offline.sitetxn import (
    SCHEME_KEYS,
    SiteTransaction,
    interpreter_scheme,
    local_launcher,
    site_transaction,
)
from wheelferry.offline.state import default_state_dir
from wheelferry.offline.txn import VenvTransaction, venv_transaction
from wheelferry.offline.verify import VerifiedBundle, verify_bundle
from wheelferry.offline.wheelcheck import check_wheel_zip

Runner = Callable[..., "subprocess.CompletedProcess[str]"]

@dataclass(frozen=True)
class InstallReport:
    """What was installed where, from which bundle, and how long it took."""

    bundle: str
    sequence: int
    target: str
    packages: tuple[str, ...]  # name==version
    bytes: int
    seconds: float
    venv: str | None
    python: str | None
    trimmed: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    smoke: tuple[str, ...] = ()  # "command -> last line of its output"
    changes: Changes = field(default_factory=Changes)
    recovered: str | None = None  # what was finished or undone of an interrupted earlier run
    leftovers: tuple[str, ...] = ()  # siblings of earlier runs removed after the switch
    signed_by: str = ""  # who signed the bundle (every counted signer; what was not counted)
    signatures: tuple[dict[str, str], ...] = ()

    def to_json(self) -> JSONObject:
        return {"bundle": self.bundle, "sequence": self.sequence, "target": self.target,
                "packages": list(self.packages), "bytes": self.bytes,
                "seconds": round(self.seconds, 3), "venv": self.venv, "python": self.python,
                "trimmed": list(self.trimmed), "warnings": list(self.warnings),
                "signatures": list(self.signatures),
                "smoke": list(self.smoke), "changes": self.changes.to_json(),
                "recovered": self.recovered, "leftovers-removed": list(self.leftovers)}


def _clean_env(extra_path: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PIP_") and k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PYTHONNOUSERSITE"] = "1"
    if extra_path is not None:
        env["PATH"] = str(extra_path) + os.pathsep + env.get("PATH", "")
        env["VIRTUAL_ENV"] = str(extra_path.parent)
    return env


def _call(run: Runner, cmd: Sequence[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return run(list(cmd), capture_output=True, text=True, env=env or _clean_env(), check=False,
                   stdin=subprocess.DEVNULL)
    except OSError as exc:
        raise InstallError(f"cannot run {cmd[0]}: {exc.strerror or exc}") from None


def _last_lines(proc: subprocess.CompletedProcess[str], n: int = 3) -> str:
    """Why a command failed, in a few lines: pip's first ``ERROR:`` line on, else the tail.

    pip reports progress ("Processing ...") on stdout and the cause on stderr.
    """
    err = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
    at = next((i for i, ln in enumerate(err) if ln.startswith("ERROR:")), None)
    if at is not None:
        lines = err[at:at + n]
    else:
        lines = err[-n:] or [ln.strip() for ln in proc.stdout.splitlines() if ln.strip()][-n:]
    return " / ".join(lines) or f"exit code {proc.returncode}"


def judge_check(lines: Iterable[str], target: LockedTarget, who: str, why: str = "") -> list[str]:
    """Split ``pip check``-style *lines*: edges the lock trimmed on purpose are notes, others raise."""
    excluded = {(canonicalize_name(t.parent or ""),
                 canonicalize_name(re.split(r"[^A-Za-z0-9._-]", t.requirement.strip())[0]))
                for t in target.trimmed if t.reason == "excluded"}
    notes, problems = [], []
    for line in lines:
        m = re.match(r"^(\S+) \S+ (?:requires|has requirement) ([A-Za-z0-9._-]+)", line)
        if m and (canonicalize_name(m.group(1)), canonicalize_name(m.group(2))) in excluded:
            notes.append(line.strip())
        elif line.strip():
            problems.append(line.strip())
    if problems or (why and not notes):
        raise InstallError(f"{who} found broken requirements: {'; '.join(problems[:5]) or why}",
                           hint="the lock does not fit this environment; the environment was restored")
    return notes


def run_smoke(commands: Iterable[str], bin_dir: Path, run: Runner = subprocess.run) -> list[str]:
    """Run the spec's smoke commands (argument lists, no shell) with the new venv first on PATH.

    Returns ``command -> last line of its output`` for each, for the report.
    """
    results = []
    for command in commands:
        argv = shlex.split(command)
        if not argv:
            continue
        exe = shutil.which(argv[0], path=str(bin_dir)) or argv[0]
        proc = _call(run, [exe, *argv[1:]], env=_clean_env(bin_dir))
        if proc.returncode != 0:
            raise InstallError(f"smoke test `{command}` failed: {_last_lines(proc)}",
                               hint="the previous environment was kept")
        last = (proc.stdout or "").strip().splitlines()[-1:] or ["(no output)"]
        results.append(f"{command} -> {last[0]}")
    return results


def _bin_dir(venv: Path) -> Path:
    return venv / ("Scripts" if os.name == "nt" else "bin")


def _venv_python(venv: Path) -> str:
    return str(_bin_dir(venv) / ("python.exe" if os.name == "nt" else "python"))


def _create_venv(venv: Path, base_python: str, run: Runner) -> None:
    """A venv without pip (the engine installs; pip goes in only when the lock holds it)."""
    proc = _call(run, [base_python, "-m", "venv", "--without-pip", str(venv)])
    if proc.returncode != 0:
        raise InstallError(f"could not create a virtual environment: {_last_lines(proc)}")


# ------------------------------------------------------------------ the source


@dataclass(frozen=True)
class BundleSource:
    """The source: the verified bundle's wheels of the chosen target, each zip checked once.

    pypa/installer reads one wheel through a ``WheelSource``; this is the same
    seam one level up, the set of wheels an install takes from a bundle.
    """

    bundle: VerifiedBundle
    target: LockedTarget
    wheels_dir: Path

    @property
    def wanted(self) -> dict[str, str]:
        """Every package of the target, name -> version."""
        return {p.name: p.version for p in self.target.packages}

    def wheel(self, package: LockedPackage) -> Path:
        return self.wheels_dir / self.bundle.lock.wheels[package.wheel].filename

    def check(self) -> None:
        """Every wheel of the target is a sound zip (a hash says which bytes, not that they unpack)."""
        for p in self.target.packages:
            check_wheel_zip(self.wheel(p))

    def wheels(self, packages: Iterable[LockedPackage]) -> list[Path]:
        return [self.wheel(p) for p in packages]

    @property
    def smoke(self) -> tuple[str, ...]:
        """The spec's smoke commands."""
        return tuple(self.bundle.lock.spec.smoke)


# ------------------------------------------------------------------ the destinations


class Destination(Protocol):
    """Where the target goes, as a transaction: written, checked, then committed or undone.

    pypa/installer writes one wheel through a ``WheelDestination``; here the two
    destinations of ``install`` are a new environment (``--venv``, :class:`NewVenv`) and
    an existing interpreter's environment (``--python``, :class:`ExistingInterpreter`).
    Leaving :meth:`open` without :meth:`commit` undoes what was written.
    """

    interpreter: str  # probed for the host's tags and markers while the bundle is verified
    recovered: str | None  # what was finished or undone of an interrupted earlier run

    def start(self, pool: concurrent.futures.Executor, host: concurrent.futures.Future[Host]) -> None:
        """Begin what needs nothing of the bundle, beside its verification."""

    def open(self) -> contextlib.AbstractContextManager[None]:
        """The transaction: locked, an interrupted earlier run finished or undone first."""

    def plan(self, source: BundleSource, allow_downgrade: bool) -> list[LockedPackage]:
        """Refuse a downgrade not allowed; return the packages to write."""

    def write(self, wheels: Sequence[Path], host: Host, compile: bool) -> None:
        """Install *wheels* with the engine; a signal stops it and waits for it."""

    @property
    def site_dirs(self) -> list[Path]: ...

    @property
    def scripts_dir(self) -> Path: ...

    def changes(self) -> Changes:
        """What the install changes, package by package."""

    def commit(self, bundle: VerifiedBundle, force_older: bool) -> None:
        """Make the install final and record the bundle's sequence."""

    def held(self) -> contextlib.AbstractContextManager[object]:
        """Signals wait for the block (the cleanup of the run)."""

    @property
    def venv(self) -> str | None:
        """The report's ``venv``: DIR of ``--venv``, else None."""

    @property
    def python(self) -> str | None:
        """The report's ``python``: PY of ``--python``, else None."""

    @property
    def leftovers(self) -> tuple[str, ...]:
        """Siblings of earlier runs removed after the switch."""


def _engine(guard: SignalGuard, wheels: Sequence[Path], scheme: dict[str, str], python: str, host: Host,
            compile: bool, launcher: str, *, shebang: str | None = None,
            moved: tuple[Path, Path] | None = None) -> None:
    # A signal is held back while the engine's threads and processes run: they see it
    # (guard.cancelled), stop and remove what they wrote; it is raised when they are done,
    # and the transaction undoes the install.
    with guard.held():
        try:
            install_wheels(wheels, scheme, python, compile=compile, tags=host.tags, launcher=launcher,
                           shebang=shebang, moved=moved, cancelled=lambda: guard.cancelled)
        except InstallError:
            if not guard.cancelled:
                raise


class NewVenv:
    """``--venv DIR``: a venv without pip made beside DIR, switched in by the transaction (offline/txn.py).

    Scripts and bytecode are made for ``txn.prefix`` (where the venv lives once switched in).
    """

    def __init__(self, txn: VenvTransaction, run: Runner) -> None:
        self.txn, self.run = txn, run
        self.interpreter = sys.executable
        self.venv, self.python = str(txn.final), None
        self.recovered = txn.recovered
        self._scheme: concurrent.futures.Future[dict[str, str]] | None = None

    def start(self, pool: concurrent.futures.Executor, host: concurrent.futures.Future[Host]) -> None:
        # The empty shell beside the target: nothing of the bundle, nothing of the user's.
        self._scheme = pool.submit(_create_staging_venv, self.txn.staging, host, self.run)

    def open(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()  # the venv transaction is open around the whole run

    def plan(self, source: BundleSource, allow_downgrade: bool) -> list[LockedPackage]:
        self.txn.plan(source.wanted, allow_downgrade)
        return list(source.target.packages)

    @property
    def scheme(self) -> dict[str, str]:
        assert self._scheme is not None, "start() makes the venv"
        return self._scheme.result()

    def write(self, wheels: Sequence[Path], host: Host, compile: bool) -> None:
        _engine(self.txn.guard, wheels, self.scheme, _venv_python(self.txn.staging), host, compile,
                local_launcher(), shebang=_venv_python(self.txn.prefix), moved=(self.txn.staging, self.txn.prefix))

    @property
    def site_dirs(self) -> list[Path]:
        return [Path(self.scheme["purelib"]), Path(self.scheme["platlib"])]

    @property
    def scripts_dir(self) -> Path:
        return _bin_dir(self.txn.staging)

    def changes(self) -> Changes:
        return compare_sets(self.txn.before, installed_versions(self.txn.staging))

    def commit(self, bundle: VerifiedBundle, force_older: bool) -> None:
        mark = bundle.replay_mark()
        if mark is not None:  # recorded in the same step as the switch
            self.txn.accept_on_commit(*mark, force_older)
        self.txn.commit(bytecode=False)

    def held(self) -> contextlib.AbstractContextManager[object]:
        # Workers finish before the transaction removes what they write into.
        return self.txn.guard.held()

    @property
    def leftovers(self) -> tuple[str, ...]:
        return tuple(self.txn.leftovers_removed)


class ExistingInterpreter:
    """``--python PY``: that interpreter's environment in place, as a transaction (offline/sitetxn.py).

    Every file the install replaces or removes is moved aside first and put back on
    failure, SIGINT, SIGTERM or SIGHUP (after SIGKILL: by the next install into PY).
    Only packages not installed at their locked version are written.
    """

    def __init__(self, python: str, state_dir: Path, run: Runner) -> None:
        self.state_dir, self.run = state_dir, run
        self.interpreter = self.python = python
        self.venv: str | None = None
        self.leftovers: tuple[str, ...] = ()
        self.recovered: str | None = None
        self._scheme: concurrent.futures.Future[dict[str, str]] | None = None
        self._stx: SiteTransaction | None = None
        self._replaced: list[str] = []
        self._changes = Changes()

    def start(self, pool: concurrent.futures.Executor, host: concurrent.futures.Future[Host]) -> None:
        self._scheme = pool.submit(interpreter_scheme, self.interpreter, self.run)

    @property
    def scheme(self) -> dict[str, str]:
        assert self._scheme is not None, "start() asks the interpreter"
        return self._scheme.result()

    @contextlib.contextmanager
    def open(self) -> Iterator[None]:
        with site_transaction(self.interpreter, self.scheme, self.state_dir) as stx:
            self._stx, self.recovered = stx, stx.recovered
            yield

    @property
    def stx(self) -> SiteTransaction:
        assert self._stx is not None, "open() starts the transaction"
        return self._stx

    def plan(self, source: BundleSource, allow_downgrade: bool) -> list[LockedPackage]:
        # What is installed is read only now, under the lock and after an interrupted earlier
        # run was undone: its half-written state is no measure of what to replace.
        before = {n: v for n, (_, v, _) in installed_distributions(self.site_dirs).items()}
        self._changes = compare_sets(before, source.wanted, replace=False)
        check_downgrades(self._changes, allow_downgrade)
        todo = [p for p in source.target.packages
                if canonicalize_name(p.name) not in before
                or not _same_version(before[canonicalize_name(p.name)], p.version)]
        self._replaced = [p.name for p in todo if canonicalize_name(p.name) in before]
        return todo

    def write(self, wheels: Sequence[Path], host: Host, compile: bool) -> None:
        self.stx.prepare(self._replaced, wheels)
        _engine(self.stx.guard, wheels, {k: self.scheme[k] for k in SCHEME_KEYS}, self.interpreter, host, compile,
                self.scheme["launcher"])

    @property
    def site_dirs(self) -> list[Path]:
        return [Path(self.scheme["purelib"]), Path(self.scheme["platlib"])]

    @property
    def scripts_dir(self) -> Path:
        return Path(self.scheme["scripts"])

    def changes(self) -> Changes:
        return self._changes

    def commit(self, bundle: VerifiedBundle, force_older: bool) -> None:
        checkpoint("before-switch")
        with self.stx.guard.held():  # the sequence is recorded with the commit, under the lock
            self.stx.commit()
            bundle.accept(self.state_dir, force_older)

    def held(self) -> contextlib.AbstractContextManager[object]:
        return contextlib.nullcontext()  # the transaction is closed by then



def _same_version(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def _create_staging_venv(staging: Path, host: concurrent.futures.Future[Host], run: Runner) -> dict[str, str]:
    _create_venv(staging, host.result().executable, run)
    return venv_scheme(_venv_python(staging), run)


# ------------------------------------------------------------------ the one flow


def install_bundle(tar_path: Path, *, keyring: Path | None, trusted: Iterable[str],
                   allow_unsigned: bool = False, venv: Path | None = None, python: str | None = None,
                   target_id: str | None = None, state_dir: Path | None = None,
                   force_older: bool = False, allow_downgrade: bool = False, compile: bool = True,
                   smoke: Sequence[str] = (), run: Runner = subprocess.run, now: dt.datetime | None = None,
                   threshold: int = 1) -> InstallReport:
    """Verify *tar_path*, extract it privately, install the fitting target, record the sequence."""
    if (venv is None) == (python is None):
        raise UsageError("give exactly one of --venv DIR or --python PY")
    if python is not None and shutil.which(python) is None:
        raise UsageError(f"--python {python}: no such interpreter (or it is not executable)")
    state_dir = state_dir or default_state_dir()

    def flow(dest: Destination) -> InstallReport:
        return _install(tar_path, dest, keyring=keyring, trusted=trusted, allow_unsigned=allow_unsigned,
                        target_id=target_id, state_dir=state_dir, force_older=force_older,
                        allow_downgrade=allow_downgrade, compile=compile, now=now, threshold=threshold,
                        smoke=smoke, run=run)

    if python is not None:
        return flow(ExistingInterpreter(python, state_dir, run))
    assert venv is not None
    with venv_transaction(Path(venv), state_dir, label=tar_path.name) as txn:
        return flow(NewVenv(txn, run))


def _install(tar_path: Path, dest: Destination, *, keyring: Path | None, trusted: Iterable[str],
             allow_unsigned: bool, target_id: str | None, state_dir: Path, force_older: bool,
             allow_downgrade: bool, compile: bool, now: dt.datetime | None, threshold: int,
             smoke: Sequence[str], run: Runner) -> InstallReport:
    """Verify, choose the target, then plan, write, check, smoke-test and commit into *dest*."""
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="wheelferry-install-"))
    # While gpg and the member checks run, the interpreter is probed and the destination
    # begins what needs nothing of the bundle.
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
    host_job = pool.submit(probe_host, dest.interpreter, run)
    dest.start(pool, host_job)
    try:
        bundle = verify_bundle(tar_path, keyring=keyring, trusted=list(trusted),
                               allow_unsigned=allow_unsigned, state_dir=state_dir,
                               force_older=force_older, extract_to=work / "bundle", now=now,
                               threshold=threshold)
        host = host_job.result()
        source = BundleSource(bundle, choose_target(bundle.lock, host, target_id), work / "bundle" / WHEELS_DIR)
        with dest.open():
            todo = dest.plan(source, allow_downgrade)
            for drift in capture_drift(source.target, host):
                warn(f"this host drifted from the capture the bundle was locked for: {drift}")
            source.check()
            dest.write(source.wheels(todo), host, compile)
            problems = check_requirements(dest.site_dirs, host.markers)
            notes = judge_check(problems, source.target, "the requirements check") if problems else []
            smoked = run_smoke([*source.smoke, *smoke], dest.scripts_dir, run)
            changes = dest.changes()
            dest.commit(bundle, force_older)
    finally:
        with dest.held():
            pool.shutdown(wait=True)
            shutil.rmtree(work, ignore_errors=True)
    m, target = bundle.manifest, source.target
    return InstallReport(
        bundle=m.name, sequence=m.sequence, target=target.id,
        packages=tuple(f"{p.name}=={p.version}" for p in sorted(target.packages, key=lambda p: p.name)),
        bytes=sum(bundle.lock.wheels[p.wheel].size or 0 for p in target.packages),
        seconds=time.monotonic() - started, venv=dest.venv, python=dest.python,
        trimmed=tuple(notes), warnings=bundle.warnings, smoke=tuple(smoked), changes=changes,
        recovered=dest.recovered, leftovers=dest.leftovers, signed_by=bundle.signed_by(),
        signatures=tuple(s.to_json() for s in bundle.signers.counted) if bundle.signers else ())
