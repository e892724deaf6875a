"""The --venv install transaction: real installs, real processes killed by real signals."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
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
from tests.support.pythons import pip_for, pipless_venv
from tests.support.wheels import build_wheel
from wheelferry.errors import InstallError
from wheelferry.offline.envchanges import check_downgrades, compare_sets
from wheelferry.offline.relocate import relocate
from wheelferry.offline.txn import exchange, find_leftovers

SRC = Path(__file__).resolve().parents[1] / "src"
CLI = "import sys; from wheelferry.offline.cli import main; sys.exit(main(sys.argv[1:]))"
OLD = {"alpha": "1.0", "beta": "1.0"}
NEW = {"alpha": "2.0", "beta": "2.0", "gamma": "2.0"}
ENTRY = b"[console_scripts]\nalpha-tool = alpha:main\n"


# ------------------------------------------------------------------ pure parts


def test_compare_sets_names_every_change() -> None:
    c = compare_sets({"TensorFlow": "2.20.0", "numpy": "2.0.0", "six": "1.16.0", "old-thing": "1"},
                     {"tensorflow": "2.19.0", "numpy": "2.1.0rc1", "six": "1.16.0", "new_thing": "3"})
    assert c.downgraded == (("tensorflow", "2.20.0", "2.19.0"),)
    assert c.upgraded == (("numpy", "2.0.0", "2.1.0rc1"),)
    assert c.added == (("new-thing", "3"),) and c.removed == (("old-thing", "1"),) and c.unchanged == 1
    assert "tensorflow 2.20.0 -> 2.19.0 (downgrade)" in c.lines()
    with pytest.raises(InstallError, match=r"would downgrade tensorflow 2\.20\.0 -> 2\.19\.0") as e:
        check_downgrades(c, allow=False)
    assert "--allow-downgrade" in (e.value.hint or "")
    check_downgrades(c, allow=True)
    # PEP 440 order, not string order: 1.10 is newer than 1.9, 2.0 newer than 2.0rc1.
    assert compare_sets({"a": "1.9", "b": "2.0rc1"}, {"a": "1.10", "b": "2.0"}).upgraded == (
        ("a", "1.9", "1.10"), ("b", "2.0rc1", "2.0"))
    # --python mode adds to an environment: what the bundle does not hold is not "removed".
    assert compare_sets({"x": "1"}, {"y": "1"}, replace=False).removed == ()


def test_exchange_swaps_two_directories(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "which").write_text("a")
    (b / "which").write_text("b")
    if not exchange(a, b):
        pytest.skip("this kernel or file system has no renameat2(RENAME_EXCHANGE)")
    assert (a / "which").read_text() == "b" and (b / "which").read_text() == "a"


def test_leftovers_are_only_what_earlier_runs_left(tmp_path: Path) -> None:
    env = tmp_path / "env"
    (env / "bin").mkdir(parents=True)
    (env / "pyvenv.cfg").write_text("home = /usr/bin\n")
    old1 = tmp_path / "env.old-1"
    (old1 / "lib").mkdir(parents=True)
    (old1 / "pyvenv.cfg").write_text("home = /usr/bin\n")
    half = tmp_path / "env.old-2"  # half removed: only venv-shaped parts left
    (half / "lib" / "python3.9").mkdir(parents=True)
    staging = tmp_path / "env.wheelferry-20260101000000-abcdef"
    (staging / "bin").mkdir(parents=True)
    users = tmp_path / "env.old-3"
    users.mkdir()
    (users / "notes.txt").write_text("mine")
    (tmp_path / "env.old-backup").mkdir()
    (tmp_path / "other.old-1").mkdir()
    assert find_leftovers(env) == [old1, half, staging]


# ------------------------------------------------------------------ relocation


def test_relocated_venv_works_at_its_final_path(tmp_path: Path) -> None:
    staging, final = tmp_path / "env.wheelferry-x", tmp_path / "env"
    pipless_venv(staging)
    wheel = build_wheel(tmp_path / "w", "alpha", "1.0", files={"alpha-1.0.dist-info/entry_points.txt": ENTRY,
                                                               "alpha/__init__.py": b"def main():\n    "
                                                               b"print(__file__)\n"})
    subprocess.run([*pip_for(staging / "bin" / "python"), "install", "-q", "--no-index",
                    "--no-deps", str(wheel)], check=True, env={**os.environ, "PIP_CONFIG_FILE": os.devnull})
    changed = relocate(staging, final)
    os.rename(staging, final)
    assert final / "bin" / "alpha-tool" in [final / p.relative_to(staging) for p in changed]
    assert (final / "bin" / "alpha-tool").read_text().startswith(f"#!{final}/bin/python")
    assert str(staging) not in (final / "bin" / "activate").read_text()
    out = subprocess.run([str(final / "bin" / "alpha-tool")], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(final / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
                                               / "site-packages" / "alpha" / "__init__.py")
    # Bytecode names the final path (tracebacks find their source), and RECORD still holds.
    pycs = list(final.glob("lib/python*/site-packages/alpha/__pycache__/*.pyc"))
    assert pycs and all(str(staging).encode() not in p.read_bytes() for p in pycs)
    record = next(final.glob("lib/python*/site-packages/alpha-1.0.dist-info/RECORD"))
    for path, digest, _ in csv.reader(io.StringIO(record.read_text())):
        if digest:
            data = (record.parent.parent / path).read_bytes()
            want = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert digest == f"sha256={want}", path


# ------------------------------------------------------------------ whole installs


class Site:
    """Signed bundles of an old and a new set, and a CLI that installs them into one venv path."""

    def __init__(self, root: Path, keys: GpgKeys) -> None:
        self.root, self.keys = root, keys
        self.keyring = keys.export("good", path=root / "KEYS.asc")
        self.state = root / "state"
        self.env = root / "srv" / "env"
        self.env.parent.mkdir()
        w1, w2 = root / "w1", root / "w2"
        alpha = {"alpha-{v}.dist-info/entry_points.txt": ENTRY}
        self.old = self.bundle(1, [build_wheel(w1, "alpha", "1.0", files={k.format(v="1.0"): d
                                                                        for k, d in alpha.items()}),
                                   build_wheel(w1, "beta", "1.0")])
        # gamma is the biggest wheel of the new set (a few MB of incompressible bytes).
        self.new = self.bundle(2, [build_wheel(w2, "alpha", "2.0", files={k.format(v="2.0"): d
                                                                        for k, d in alpha.items()}),
                                   build_wheel(w2, "beta", "2.0"),
                                   build_wheel(w2, "gamma", "2.0", padding=8_000_000)])

    def bundle(self, sequence: int, wheels: list[Path]) -> Path:
        d = self.root / f"b{sequence}"
        d.mkdir()
        tar = make_bundle(d, wheels, name="demo", sequence=sequence)
        self.keys.sign("good", tar)
        return tar

    def argv(self, tar: Path, *extra: str) -> list[str]:
        return [sys.executable, "-s", "-c", CLI, "install", str(tar), "--keyring", str(self.keyring),
                "--trusted-key", self.keys.fpr["good"], "--state-dir", str(self.state),
                "--venv", str(self.env), *extra]

    def environ(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
        env.update(PYTHONPATH=str(SRC), PIP_CONFIG_FILE=os.devnull, **extra)
        return env

    def install(self, tar: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(tar, *extra), capture_output=True, text=True, env=self.environ(),
                              check=False)

    def holds(self) -> str:
        """"old" or "new" when the env path imports one complete set (its scripts run too)."""
        code = ("import importlib.metadata as m, json; "
                "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions() "
                "if d.metadata['Name'] in ('alpha', 'beta', 'gamma')}))")
        proc = subprocess.run([str(self.env / "bin" / "python"), "-c", code], capture_output=True,
                              text=True, check=False)
        assert proc.returncode == 0, proc.stderr
        found = json.loads(proc.stdout)
        for mod, version in found.items():
            got = subprocess.run([str(self.env / "bin" / "python"), "-c",
                                  f"import {mod}; print({mod}.__version__)"],
                                 capture_output=True, text=True, check=True).stdout.strip()
            assert got == version
        tool = (self.env / "bin" / "alpha-tool").read_text().splitlines()[0]
        assert tool == f"#!{self.env}/bin/python", tool
        assert found in (OLD, NEW), found
        return "old" if found == OLD else "new"

    def siblings(self) -> list[str]:
        return sorted(p.name for p in self.env.parent.iterdir() if p.name != "env")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, gpg_keys: GpgKeys) -> Site:
    s = Site(tmp_path_factory.mktemp("txn"), gpg_keys)
    proc = s.install(s.old)
    assert proc.returncode == 0, proc.stderr
    assert "  + alpha 1.0\n" in proc.stdout and "  + beta 1.0\n" in proc.stdout
    assert s.holds() == "old"
    s.template = s.root / "template"  # type: ignore[attr-defined]
    shutil.copytree(s.env, s.template, symlinks=True)  # type: ignore[attr-defined]
    return s


def _reset(site: Site) -> None:
    """Put the old environment back at the env path (same path, so its scripts stay right)."""
    shutil.rmtree(site.env, ignore_errors=True)
    for name in site.siblings():
        shutil.rmtree(site.env.parent / name)
    shutil.copytree(site.template, site.env, symlinks=True)  # type: ignore[attr-defined]
    shutil.rmtree(site.state / "transactions", ignore_errors=True)
    (site.state / "demo.json").unlink(missing_ok=True)


def test_upgrade_prints_changes_and_removes_leftovers(site: Site) -> None:
    _reset(site)
    stale = site.env.parent / "env.old-1"  # what an earlier version left after a kill
    shutil.copytree(site.template, stale, symlinks=True)  # type: ignore[attr-defined]
    proc = site.install(site.new)
    assert proc.returncode == 0, proc.stderr
    assert "changes: 1 added, 2 upgraded, 0 removed" in proc.stdout
    assert "alpha 1.0 -> 2.0" in proc.stdout and "+ gamma 2.0" in proc.stdout
    assert f"removed a leftover of an earlier run: {stale}" in proc.stdout
    assert site.holds() == "new" and site.siblings() == []


def test_downgrade_refused_then_allowed(site: Site) -> None:
    _reset(site)
    assert site.install(site.new).returncode == 0
    (site.state / "demo.json").unlink()  # the replay mark is not what is tested here
    proc = site.install(site.old, "--json")
    assert proc.returncode == 1
    out = json.loads(proc.stdout)
    assert "would downgrade alpha 2.0 -> 1.0, beta 2.0 -> 1.0" in out["message"]
    assert "--allow-downgrade" in out["hint"]
    assert site.holds() == "new" and site.siblings() == []
    proc = site.install(site.old, "--json", "--allow-downgrade")
    assert proc.returncode == 0, proc.stdout
    changes = json.loads(proc.stdout)["changes"]
    assert changes["downgraded"] == ["alpha 2.0 -> 1.0", "beta 2.0 -> 1.0"]
    assert changes["removed"] == ["gamma==2.0"]
    assert site.holds() == "old" and site.siblings() == []


def test_second_install_on_the_same_path_is_refused_while_one_runs(site: Site, tmp_path: Path) -> None:
    _reset(site)
    ready = tmp_path / "ready"
    first = subprocess.Popen(site.argv(site.new), env=site.environ(WHEELFERRY_TEST_PAUSE=f"unpack:{ready}"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(ready, first)
        second = site.install(site.new)
        assert second.returncode == 1
        assert f"another wheelferry install into {site.env} is running (pid {first.pid})" in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    assert site.holds() == "old" and site.siblings() == []


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


PHASES = ["unpack", "compile", "before-switch", "after-switch"]
SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP", "SIGKILL"]
# Every signal and every phase at least once by default; all 16 pairs with WHEELFERRY_KILL_MATRIX=1.
DEFAULT_KILLS = {("SIGINT", "unpack"), ("SIGTERM", "compile"), ("SIGHUP", "before-switch"),
                 ("SIGTERM", "after-switch"), ("SIGKILL", "unpack"), ("SIGKILL", "after-switch")}
KILLS = [(s, p, "new" if p == "after-switch" else "old") for s in SIGNALS for p in PHASES
         if os.environ.get("WHEELFERRY_KILL_MATRIX") == "1" or (s, p) in DEFAULT_KILLS]


@pytest.mark.parametrize(("signame", "phase", "holds"), KILLS, ids=[f"{s}-{p}" for s, p, _ in KILLS])
def test_kill_during_upgrade(site: Site, tmp_path: Path, signame: str, phase: str, holds: str) -> None:
    _reset(site)
    ready = tmp_path / "ready"
    proc = subprocess.Popen(site.argv(site.new), env=site.environ(WHEELFERRY_TEST_PAUSE=f"{phase}:{ready}"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(ready, proc)
    signo = getattr(signal, signame)
    proc.send_signal(signo)
    _out, err = proc.communicate(timeout=60)
    assert site.holds() == holds
    if signame == "SIGKILL":
        assert proc.returncode == -signal.SIGKILL
        assert list((site.state / "transactions").glob("*.json"))  # the journal outlives the process
    else:
        # Finished or undone before exiting: nothing beside the env path, no journal, 128 + signal.
        assert proc.returncode == 128 + signo, err
        assert f"interrupted by {signame}" in err
        assert ("finished" if holds == "new" else "undone") in err
        assert site.siblings() == [] and not list((site.state / "transactions").glob("*.json"))
        assert "Traceback" not in err
    again = site.install(site.new)
    assert again.returncode == 0, again.stderr
    if signame == "SIGKILL":
        verb = "finished it" if holds == "new" else "undid it"
        assert f"an earlier install into {site.env} (pid {proc.pid}) was interrupted at phase" in again.stderr
        assert verb in again.stderr
    assert site.holds() == "new" and site.siblings() == []
    assert not list((site.state / "transactions").glob("*.json"))


def test_symlinked_env_is_switched_by_replacing_the_link(site: Site) -> None:
    _reset(site)
    blue = site.env.parent / "env-blue"
    os.rename(site.env, blue)
    blue_site = Site.__new__(Site)
    blue_site.__dict__.update(site.__dict__, env=blue)
    assert blue_site.install(site.old).returncode == 0  # a venv valid at its own real path
    shutil.rmtree(site.state / "transactions", ignore_errors=True)
    site.env.symlink_to(blue, target_is_directory=True)
    proc = site.install(site.new)
    assert proc.returncode == 0, proc.stderr
    assert site.env.is_symlink() and not blue.exists()
    real = Path(os.path.realpath(site.env))
    assert real.parent == site.env.parent and real.name.startswith("env.wheelferry-")
    got = subprocess.run([str(site.env / "bin" / "python"), "-c", "import alpha, gamma; print(alpha.__version__)"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert got == "2.0"
    assert (real / "bin" / "alpha-tool").read_text().startswith(f"#!{real}/bin/python")
    assert site.siblings() == [real.name]
    site.env.unlink()
    shutil.rmtree(real)


def test_python_mode_refuses_a_downgrade(site: Site, tmp_path: Path) -> None:
    py = str(pipless_venv(tmp_path / "plain"))
    base = site.argv(site.new)[:-2]
    (site.state / "demo.json").unlink(missing_ok=True)
    ok = subprocess.run([*base, "--python", py], capture_output=True, text=True, env=site.environ(), check=False)
    assert ok.returncode == 0, ok.stderr
    (site.state / "demo.json").unlink()
    old = [*site.argv(site.old)[:-2], "--python", py]
    proc = subprocess.run(old, capture_output=True, text=True, env=site.environ(), check=False)
    assert proc.returncode == 1 and "would downgrade alpha 2.0 -> 1.0" in proc.stderr
    got = subprocess.run([py, "-c", "import alpha; print(alpha.__version__)"], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert got == "2.0"
