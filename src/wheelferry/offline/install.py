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

Speed without skipping a check: the interpreter is probed, and the new venv's
empty shell made, while the bundle is being verified.
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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from wheelferry.clikit import warn
from wheelferry.errors import InstallError, UsageError
from wheelferry.interrupt import checkpoint
from wheelferry.jsontypes import JSONObject
from wheelferry.lockfile import LockedTarget
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
from wheelferry.offline.sitetxn import interpreter_scheme, local_launcher, site_transaction
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


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def judge_check(lines: Iterable[str], target: LockedTarget, who: str, why: str = "") -> list[str]:
    """Split ``pip check``-style *lines*: edges the lock trimmed on purpose are notes, others raise."""
    excluded = {(_canon(t.parent or ""), _canon(re.split(r"[^A-Za-z0-9._-]", t.requirement.strip())[0]))
                for t in target.trimmed if t.reason == "excluded"}
    notes, problems = [], []
    for line in lines:
        m = re.match(r"^(\S+) \S+ (?:requires|has requirement) ([A-Za-z0-9._-]+)", line)
        if m and (_canon(m.group(1)), _canon(m.group(2))) in excluded:
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


def _create_staging_venv(staging: Path, host: concurrent.futures.Future[Host], run: Runner) -> dict[str, str]:
    _create_venv(staging, host.result().executable, run)
    return venv_scheme(_venv_python(staging), run)


def install_venv(txn: VenvTransaction, bundle: VerifiedBundle, target: LockedTarget, wheels_dir: Path,
                 scheme: dict[str, str], host: Host, run: Runner = subprocess.run, *,
                 compile: bool = True, smoke: Sequence[str] = ()) -> tuple[list[str], list[str]]:
    """Install the target's wheels into the fresh venv at ``txn.staging``, check and smoke-test it.

    The smoke commands are the spec's, then *smoke* (``install --smoke``).

    Scripts and bytecode are made for ``txn.prefix`` (where the venv lives once
    switched in).  Returns the trimmed-edge notes of the requirements check and
    the smoke commands' results; the transaction switches it in or removes it.
    """
    wheels = [wheels_dir / bundle.lock.wheels[p.wheel].filename for p in target.packages]
    # A signal is held back while the engine's threads and processes run: they see it
    # (txn.guard.cancelled), stop and remove what they wrote; it is raised when they are done.
    with txn.guard.held():
        try:
            install_wheels(wheels, scheme, _venv_python(txn.staging), shebang=_venv_python(txn.prefix),
                           moved=(txn.staging, txn.prefix), compile=compile, tags=host.tags,
                           launcher=local_launcher(), cancelled=lambda: txn.guard.cancelled)
        except InstallError:
            if not txn.guard.cancelled:
                raise
    problems = check_requirements([Path(scheme["purelib"]), Path(scheme["platlib"])], host.markers)
    notes = judge_check(problems, target, "the requirements check") if problems else []
    return notes, run_smoke([*bundle.lock.spec.smoke, *smoke], _bin_dir(txn.staging), run)


def _same_version(a: str, b: str) -> bool:
    try:  # the kit carries packaging at its root; a source checkout has it under _vendor
        from packaging.version import InvalidVersion, Version
    except ImportError:
        from wheelferry._vendor.packaging.version import (  # type: ignore[assignment]
            InvalidVersion,
            Version,
        )
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def install_python(python: str, bundle: VerifiedBundle, target: LockedTarget, wheels_dir: Path,
                   host: Host, run: Runner = subprocess.run, *, allow_downgrade: bool = False,
                   compile: bool = True, state_dir: Path | None = None,
                   smoke: Sequence[str] = ()) -> tuple[list[str], list[str], Changes, str | None]:
    """Install into *python*'s environment in place with the engine, as a transaction.

    Every file the install replaces or removes is moved aside first
    (offline/sitetxn.py) and put back on failure, SIGINT, SIGTERM or SIGHUP (after
    SIGKILL: by the next install into *python*).  Returns the trimmed-edge notes,
    the smoke results, the changes and what was recovered of an earlier run.
    """
    scheme = interpreter_scheme(python, run)
    site_dirs = [Path(scheme["purelib"]), Path(scheme["platlib"])]
    with site_transaction(python, scheme, state_dir or default_state_dir()) as stx:
        # What is installed is read only now, under the lock and after an interrupted earlier
        # run was undone: its half-written state is no measure of what to replace.
        before = {n: v for n, (_, v, _) in installed_distributions(site_dirs).items()}
        changes = compare_sets(before, {p.name: p.version for p in target.packages}, replace=False)
        check_downgrades(changes, allow_downgrade)
        todo = [p for p in target.packages
                if _canon(p.name) not in before or not _same_version(before[_canon(p.name)], p.version)]
        wheels = [wheels_dir / bundle.lock.wheels[p.wheel].filename for p in todo]
        stx.prepare([p.name for p in todo if _canon(p.name) in before], wheels)
        # As for --venv: a signal waits until the engine's threads and processes have stopped and
        # removed what they wrote; then the stash is put back and the signal raised.
        with stx.guard.held():
            try:
                install_wheels(wheels, {k: scheme[k] for k in ("purelib", "platlib", "headers", "scripts", "data")},
                               python, compile=compile, tags=host.tags, launcher=scheme["launcher"],
                               cancelled=lambda: stx.guard.cancelled)
            except InstallError:
                if not stx.guard.cancelled:
                    raise
        problems = check_requirements(site_dirs, host.markers)
        notes = judge_check(problems, target, "the requirements check") if problems else []
        results = run_smoke([*bundle.lock.spec.smoke, *smoke], Path(scheme["scripts"]), run)
        checkpoint("before-switch")
        stx.commit()
    return notes, results, changes, stx.recovered


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
    if venv is None:
        return _install(tar_path, None, keyring=keyring, trusted=trusted, allow_unsigned=allow_unsigned,
                        python=python, target_id=target_id, state_dir=state_dir, force_older=force_older,
                        allow_downgrade=allow_downgrade, compile=compile, run=run, now=now,
                        threshold=threshold, smoke=smoke)
    with venv_transaction(Path(venv), state_dir, label=tar_path.name) as txn:
        return _install(tar_path, txn, keyring=keyring, trusted=trusted, allow_unsigned=allow_unsigned,
                        python=None, target_id=target_id, state_dir=state_dir, force_older=force_older,
                        allow_downgrade=allow_downgrade, compile=compile, run=run, now=now,
                        threshold=threshold, smoke=smoke)


def _install(tar_path: Path, txn: VenvTransaction | None, *, keyring: Path | None, trusted: Iterable[str],
             allow_unsigned: bool, python: str | None, target_id: str | None, state_dir: Path,
             force_older: bool, allow_downgrade: bool, compile: bool, run: Runner,
             now: dt.datetime | None, threshold: int = 1, smoke: Sequence[str] = ()) -> InstallReport:
    started = time.monotonic()
    interpreter = python or sys.executable
    recovered: str | None = None
    work = Path(tempfile.mkdtemp(prefix="wheelferry-install-"))
    # While gpg and the member checks run, the interpreter is probed and the new venv's empty
    # shell is made beside the target: nothing of the bundle, nothing of the user's.
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
    host_job = pool.submit(probe_host, interpreter, run)
    venv_job = pool.submit(_create_staging_venv, txn.staging, host_job, run) if txn is not None else None
    try:
        bundle = verify_bundle(tar_path, keyring=keyring, trusted=list(trusted),
                               allow_unsigned=allow_unsigned, state_dir=state_dir,
                               force_older=force_older, extract_to=work / "bundle", now=now,
                               threshold=threshold)
        host = host_job.result()
        target = choose_target(bundle.lock, host, target_id)
        if txn is not None:
            txn.plan({p.name: p.version for p in target.packages}, allow_downgrade)
        for drift in capture_drift(target, host):
            warn(f"this host drifted from the capture the bundle was locked for: {drift}")
        wheels_dir = work / "bundle" / WHEELS_DIR
        for p in target.packages:
            check_wheel_zip(wheels_dir / bundle.lock.wheels[p.wheel].filename)
        m = bundle.manifest
        if txn is not None:
            assert venv_job is not None
            notes, smoked = install_venv(txn, bundle, target, wheels_dir, venv_job.result(), host, run,
                                         compile=compile, smoke=smoke)
            changes = compare_sets(txn.before, installed_versions(txn.staging))
            mark = bundle.replay_mark()
            if mark is not None:  # recorded in the same step as the switch
                txn.accept_on_commit(*mark, force_older)
            txn.commit(bytecode=False)
        else:
            notes, smoked, changes, recovered = install_python(
                interpreter, bundle, target, wheels_dir, host, run, allow_downgrade=allow_downgrade,
                compile=compile, state_dir=state_dir, smoke=smoke)
            bundle.accept(state_dir, force_older)
    finally:
        # Workers finish before the transaction removes what they write into.
        with txn.guard.held() if txn is not None else contextlib.nullcontext():
            pool.shutdown(wait=True)
            shutil.rmtree(work, ignore_errors=True)
    return InstallReport(
        bundle=m.name, sequence=m.sequence, target=target.id,
        packages=tuple(f"{p.name}=={p.version}" for p in sorted(target.packages, key=lambda p: p.name)),
        bytes=sum(bundle.lock.wheels[p.wheel].size or 0 for p in target.packages),
        seconds=time.monotonic() - started, venv=str(txn.final) if txn else None, python=python,
        trimmed=tuple(notes), warnings=bundle.warnings, smoke=tuple(smoked), changes=changes,
        recovered=txn.recovered if txn else recovered,
        leftovers=tuple(txn.leftovers_removed) if txn else (), signed_by=bundle.signed_by(),
        signatures=tuple(s.to_json() for s in bundle.signers.counted) if bundle.signers else ())
