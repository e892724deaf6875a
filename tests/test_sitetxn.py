"""install --python (an existing interpreter, in place) as a transaction, and install --smoke.

Real signed bundles, real interpreters, real processes killed by real signals; the
environment is compared file by file (content, mode, links) with what it held before.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.bundles import make_bundle
from tests.support.gpgkeys import GpgKeys
from tests.support.wheels import build_wheel
from wheelferry.offline.sitetxn import STASH_PREFIX, interpreter_scheme, plan_wheel, record_files

SRC = Path(__file__).resolve().parents[1] / "src"
CLI = "import sys; from wheelferry.offline.cli import main; sys.exit(main(sys.argv[1:]))"
ENTRY = b"[console_scripts]\nalpha-tool = alpha:main\n"


def _alpha(directory: Path, version: str, **files: bytes) -> Path:
    body = f"__version__ = {version!r}\n\ndef main():\n    print('alpha', __version__)\n".encode()
    return build_wheel(directory, "alpha", version, files={
        "alpha/__init__.py": body, f"alpha-{version}.dist-info/entry_points.txt": ENTRY,
        **{f"alpha/{k}.py": v for k, v in files.items()}})


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """Every path under *root*: (sha256 of the content or the link target, mode bits)."""
    out: dict[str, tuple[str, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            p = Path(dirpath) / name
            st = p.lstat()
            if p.is_symlink():
                out[str(p.relative_to(root))] = ("-> " + os.readlink(p), 0)
            elif p.is_dir():
                out[str(p.relative_to(root)) + "/"] = ("dir", st.st_mode & 0o7777)
            else:
                out[str(p.relative_to(root))] = (hashlib.sha256(p.read_bytes()).hexdigest(), st.st_mode & 0o7777)
    return out


class Site:
    """A pip-less interpreter environment holding the old set, and bundles of the old and new sets."""

    def __init__(self, root: Path, keys: GpgKeys) -> None:
        self.root, self.keys = root, keys
        self.keyring = keys.export("good", path=root / "KEYS.asc")
        self.state = root / "state"
        self.env = root / "env"
        self.python = self.env / "bin" / "python"
        w1, w2, w3 = root / "w1", root / "w2", root / "w3"
        # alpha 1.0 has a module alpha 2.0 drops: an upgrade must remove it, an undo bring it back.
        self.old = self.bundle(1, [_alpha(w1, "1.0", legacy=b"GONE_IN_2 = True\n"), build_wheel(w1, "beta", "1.0")])
        # gamma is the biggest wheel of the new set, so the unpack pause falls inside the new set.
        self.new = self.bundle(2, [_alpha(w2, "2.0", fresh=b"NEW_IN_2 = True\n"), build_wheel(w2, "beta", "2.0"),
                                   build_wheel(w2, "gamma", "2.0", padding=4_000_000)])
        # delta needs a project nobody has: the requirements check fails after the unpack.
        self.broken = self.bundle(3, [_alpha(w3, "3.0"), build_wheel(w3, "delta", "1.0", requires=["nowhere>=1"])])

    def bundle(self, sequence: int, wheels: list[Path]) -> Path:
        d = self.root / f"b{sequence}"
        d.mkdir()
        tar = make_bundle(d, wheels, name="demo", sequence=sequence)
        self.keys.sign("good", tar)
        return tar

    def argv(self, tar: Path, *extra: str, where: tuple[str, ...] = ()) -> list[str]:
        return [sys.executable, "-s", "-c", CLI, "install", str(tar), "--keyring", str(self.keyring),
                "--trusted-key", self.keys.fpr["good"], "--state-dir", str(self.state),
                *(where or ("--python", str(self.python))), *extra]

    def environ(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
        env.update(PYTHONPATH=str(SRC), PIP_CONFIG_FILE=os.devnull, **extra)
        return env

    def install(self, tar: Path, *extra: str, where: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(tar, *extra, where=where), capture_output=True, text=True,
                              env=self.environ(), check=False)

    def versions(self) -> str:
        code = ("import importlib.metadata as m; print(' '.join(sorted(f\"{d.metadata['Name']}=={d.version}\" "
                "for d in m.distributions())))")
        return subprocess.run([str(self.python), "-c", code], capture_output=True, text=True,
                              check=True).stdout.strip()

    def leftovers(self) -> list[str]:
        found = [str(p) for p in self.env.rglob(f"{STASH_PREFIX}*")]
        return found + [str(p) for p in (self.state / "transactions").glob("python-*.json")]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, gpg_keys: GpgKeys) -> Site:
    s = Site(tmp_path_factory.mktemp("sitetxn"), gpg_keys)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(s.env)], check=True)
    proc = s.install(s.old)
    assert proc.returncode == 0, proc.stderr
    assert s.versions() == "alpha==1.0 beta==1.0"
    s.template = s.root / "template"  # type: ignore[attr-defined]
    shutil.copytree(s.env, s.template, symlinks=True)  # type: ignore[attr-defined]
    s.before = snapshot(s.env)  # type: ignore[attr-defined]
    return s


def _reset(site: Site) -> None:
    """The old environment back at the same path, and no accepted sequence or journal."""
    shutil.rmtree(site.env)
    shutil.copytree(site.template, site.env, symlinks=True)  # type: ignore[attr-defined]
    shutil.rmtree(site.state / "transactions", ignore_errors=True)
    (site.state / "demo.json").unlink(missing_ok=True)


def test_plan_names_every_file_a_wheel_writes(site: Site) -> None:
    scheme = interpreter_scheme(str(site.python))
    assert scheme["purelib"].startswith(str(site.env)) and scheme["launcher"] == "posix"
    plan = plan_wheel(next((site.root / "w2").glob("alpha-*.whl")), scheme)
    site_dir = Path(scheme["purelib"])
    assert str(site_dir / "alpha" / "fresh.py") in plan.files
    assert str(site_dir / "alpha-2.0.dist-info" / "RECORD") in plan.files
    assert str(Path(scheme["scripts"]) / "alpha-tool") in plan.files
    assert plan.sources == sorted(p for p in plan.files if p.endswith(".py"))


def test_upgrade_in_place_replaces_and_removes_by_record(site: Site) -> None:
    _reset(site)
    proc = site.install(site.new)
    assert proc.returncode == 0, proc.stderr
    assert "alpha 1.0 -> 2.0" in proc.stdout and "+ gamma 2.0" in proc.stdout
    assert site.versions() == "alpha==2.0 beta==2.0 gamma==2.0"
    lib = Path(interpreter_scheme(str(site.python))["purelib"])
    assert not (lib / "alpha" / "legacy.py").exists() and (lib / "alpha" / "fresh.py").exists()
    assert not (lib / "alpha-1.0.dist-info").exists()
    assert (lib / "alpha-2.0.dist-info" / "INSTALLER").read_text().strip() == "wheelferry"
    tool = subprocess.run([str(site.env / "bin" / "alpha-tool")], capture_output=True, text=True, check=True)
    assert tool.stdout.strip() == "alpha 2.0"
    assert site.leftovers() == []


@pytest.mark.parametrize("how", ["requirements", "smoke"])
def test_failed_install_puts_every_file_back(site: Site, how: str) -> None:
    _reset(site)
    if how == "requirements":
        proc = site.install(site.broken)
        assert "delta 1.0 requires nowhere" in proc.stderr, proc.stderr
    else:
        proc = site.install(site.new, "--smoke", "python -c 'import gamma, sys; sys.exit(3)'")
        assert "smoke test `python -c 'import gamma, sys; sys.exit(3)'` failed" in proc.stderr, proc.stderr
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert snapshot(site.env) == site.before  # type: ignore[attr-defined]
    assert site.leftovers() == []
    assert not (site.state / "demo.json").exists(), "a failed install records no accepted sequence"


def test_smoke_runs_with_the_new_environment(site: Site) -> None:
    _reset(site)
    proc = site.install(site.new, "--smoke", "python -c 'import alpha; print(alpha.__version__)'",
                        "--smoke", "alpha-tool")
    assert proc.returncode == 0, proc.stderr
    assert "smoke: python -c 'import alpha; print(alpha.__version__)' -> 2.0" in proc.stdout
    assert "smoke: alpha-tool -> alpha 2.0" in proc.stdout


def test_venv_smoke_failure_leaves_dir_untouched(site: Site) -> None:
    venv = site.root / "srv" / "venv"
    where = ("--venv", str(venv))
    (site.state / "demo.json").unlink(missing_ok=True)
    ok = site.install(site.old, where=where)
    assert ok.returncode == 0, ok.stderr
    before = snapshot(venv)
    (site.state / "demo.json").unlink()
    bad = site.install(site.new, "--smoke", "python -c 'import gamma; raise SystemExit(\"no GPU\")'", where=where)
    assert bad.returncode == 1 and "smoke test" in bad.stderr and "no GPU" in bad.stderr, bad.stderr
    assert snapshot(venv) == before
    assert sorted(p.name for p in venv.parent.iterdir()) == ["venv"]
    fresh = site.root / "srv" / "never"
    bad = site.install(site.new, "--smoke", "false", where=("--venv", str(fresh)))
    assert bad.returncode == 1 and not fresh.exists()
    good = site.install(site.new, "--smoke", "python -c 'import gamma; print(gamma.__version__)'", where=where)
    assert good.returncode == 0 and "-> 2.0" in good.stdout, good.stderr
    shutil.rmtree(venv.parent)


@pytest.mark.parametrize("bad", ["", "python -c 'unclosed"])
def test_smoke_that_is_no_command_line_is_a_usage_error(site: Site, bad: str) -> None:
    _reset(site)
    proc = site.install(site.new, "--smoke", bad)
    assert proc.returncode == 2 and "--smoke" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 2
    assert snapshot(site.env) == site.before  # type: ignore[attr-defined]


# ------------------------------------------------------------------ kill tests


def _wait_for(ready: Path, proc: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"installer ended before the pause (rc {proc.returncode}): {err}{out}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("installer never reached the pause")
        time.sleep(0.02)


# Every signal and every phase at least once by default; all 16 pairs with WHEELFERRY_KILL_MATRIX=1
# (stashed: the replaced files are aside, nothing new written; SIGKILL there is also
# test_next_run_after_sigkill_reads_the_environment_it_undid).
DEFAULT_KILLS = {("SIGINT", "unpack"), ("SIGTERM", "compile"), ("SIGHUP", "before-switch"), ("SIGTERM", "unpack"),
                 ("SIGKILL", "before-switch")}
KILLS = [(s, p) for s in ("SIGINT", "SIGTERM", "SIGHUP", "SIGKILL")
         for p in ("stashed", "unpack", "compile", "before-switch")
         if os.environ.get("WHEELFERRY_KILL_MATRIX") == "1" or (s, p) in DEFAULT_KILLS]


@pytest.mark.parametrize(("signame", "phase"), KILLS, ids=[f"{s}-{p}" for s, p in KILLS])
def test_kill_during_upgrade_in_place(site: Site, tmp_path: Path, signame: str, phase: str) -> None:
    _reset(site)
    ready = tmp_path / "ready"
    proc = subprocess.Popen(site.argv(site.new), env=site.environ(WHEELFERRY_TEST_PAUSE=f"{phase}:{ready}",
                                                                  PYTHONFAULTHANDLER="1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(ready, proc)
    assert snapshot(site.env) != site.before  # type: ignore[attr-defined]  # the kill lands mid-change
    signo = getattr(signal, signame)
    proc.send_signal(signo)
    try:
        _out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:  # say where it hangs (PYTHONFAULTHANDLER) rather than only that
        proc.send_signal(signal.SIGABRT)
        raise AssertionError(f"no exit 60 s after {signame}: {proc.communicate(timeout=30)[1]}") from None
    if signame == "SIGKILL":
        assert proc.returncode == -signal.SIGKILL
        assert list((site.state / "transactions").glob("python-*.json"))  # the journal outlives it
        # The next run undoes it first; this one then fails its smoke test and undoes itself.
        again = site.install(site.new, "--smoke", "false")
        assert again.returncode == 1, again.stderr
        assert (f"note: an earlier install into {site.python} (pid {proc.pid}) was interrupted at phase "
                f"installing; undid it") in again.stderr
    else:
        assert proc.returncode == 128 + signo, err
        assert f"interrupted by {signame}; undone: {site.python}'s environment holds what it had before" in err
        assert "Traceback" not in err
    assert snapshot(site.env) == site.before  # type: ignore[attr-defined]
    assert site.leftovers() == []
    final = site.install(site.new)
    assert final.returncode == 0, final.stderr
    assert site.versions() == "alpha==2.0 beta==2.0 gamma==2.0" and site.leftovers() == []



def _sigkill_at(site: Site, phase: str, ready: Path) -> int:
    """Start the upgrade of the old set, SIGKILL it at *phase*; its pid."""
    ready.unlink(missing_ok=True)
    proc = subprocess.Popen(site.argv(site.new), env=site.environ(WHEELFERRY_TEST_PAUSE=f"{phase}:{ready}"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(ready, proc)
    proc.kill()
    proc.communicate(timeout=60)
    assert list((site.state / "transactions").glob("python-*.json"))
    return proc.pid


@pytest.mark.parametrize("phase", ["stashed", "compile"])
def test_next_run_after_sigkill_reads_the_environment_it_undid(site: Site, tmp_path: Path, phase: str) -> None:
    """SIGKILL with the old files aside and nothing new written (stashed), or with every new
    file but RECORD written (compile): the next run undoes it before it reads what is installed,
    so a failing retry puts back every file (bytecode of the replaced packages included), and a
    good retry installs the whole new set, not only what the half-written state lacked."""
    _reset(site)
    pid = _sigkill_at(site, phase, tmp_path / "ready")
    again = site.install(site.new, "--smoke", "false")
    assert again.returncode == 1 and "smoke test `false` failed" in again.stderr, again.stderr
    assert (f"note: an earlier install into {site.python} (pid {pid}) was interrupted at phase "
            f"installing; undid it") in again.stderr
    assert snapshot(site.env) == site.before  # type: ignore[attr-defined]
    assert site.leftovers() == []
    pid = _sigkill_at(site, phase, tmp_path / "ready")
    good = site.install(site.new)
    assert good.returncode == 0, good.stderr
    assert f"(pid {pid}) was interrupted at phase installing; undid it" in good.stderr
    assert "alpha 1.0 -> 2.0" in good.stdout and "beta 1.0 -> 2.0" in good.stdout, good.stdout
    assert site.versions() == "alpha==2.0 beta==2.0 gamma==2.0" and site.leftovers() == []
    lib = Path(interpreter_scheme(str(site.python))["purelib"])
    assert not (lib / "alpha" / "legacy.py").exists() and not (lib / "alpha-1.0.dist-info").exists()
    assert sorted(p.name for p in (lib / "alpha" / "__pycache__").iterdir()) == sorted(
        f"{m}.{sys.implementation.cache_tag}.pyc" for m in ("__init__", "fresh"))


def test_bytecode_the_interpreter_wrote_goes_aside_and_back(site: Site, tmp_path: Path) -> None:
    """The old set installed without bytecode, then imported: the interpreter's own
    __pycache__ files are in no RECORD.  A failed upgrade puts them back unchanged; a good one
    leaves no bytecode of the module it removed."""
    _reset(site)
    env = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    where = ("--python", str(env / "bin" / "python"))
    first = site.install(site.old, "--no-compile", where=where)
    assert first.returncode == 0, first.stderr
    (site.state / "demo.json").unlink()
    lib = Path(interpreter_scheme(where[1])["purelib"])
    assert not list(lib.rglob("*.pyc"))
    plain = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    subprocess.run([where[1], "-c", "import alpha.legacy, beta"], env=plain, check=True)
    cached = sorted(p.name for p in lib.rglob("*.pyc"))
    tag = sys.implementation.cache_tag
    assert cached == sorted([f"__init__.{tag}.pyc", f"legacy.{tag}.pyc", f"__init__.{tag}.pyc"])
    before = snapshot(env)
    bad = site.install(site.new, "--smoke", "false", where=where)
    assert bad.returncode == 1 and "smoke test `false` failed" in bad.stderr, bad.stderr
    assert snapshot(env) == before
    good = site.install(site.new, where=where)
    assert good.returncode == 0, good.stderr
    assert sorted(p.name for p in (lib / "alpha" / "__pycache__").iterdir()) == [f"__init__.{tag}.pyc",
                                                                                 f"fresh.{tag}.pyc"]
    assert site.leftovers() == [] and not list(lib.glob(f"{STASH_PREFIX}*"))


@pytest.mark.parametrize("record", [b"pkg/a.py,,\n\xff\xfe\n", b"pkg/a.py,,\x00\n"])
def test_an_unreadable_installed_record_is_read_as_missing(tmp_path: Path, record: bytes) -> None:
    # Invalid UTF-8, or a NUL byte (which Python 3.9's csv refuses): what is installed is
    # judged from the dist-info alone, as for a missing RECORD, never a traceback.
    dist_info = tmp_path / "pkg-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Name: pkg\nVersion: 1.0\n")
    (dist_info / "RECORD").write_bytes(record)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("")
    found = record_files(dist_info, [str(tmp_path)])
    assert {str(dist_info / "METADATA"), str(dist_info / "RECORD")} <= set(found)
    readable = b"\xff" not in record and sys.version_info >= (3, 11)
    assert (str(tmp_path / "pkg" / "a.py") in found) == readable
