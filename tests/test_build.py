"""`wheelferry build` end to end: loopback index, real wheels, real gpg, real gpgv."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.support.wheels import build_wheel
from wheelferry.cli import main

LINUX = "linux-x86_64:3.11"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    d = tmp_path / "wheels"
    build_wheel(d, "app", "1.0", requires=["dep", 'winonly; sys_platform == "win32"'], padding=300_000)
    build_wheel(d, "dep", "1.0", padding=200_000)
    build_wheel(d, "winonly", "1.0")
    return d


def run(*argv: str, capsys: Any) -> tuple[int, dict[str, Any]]:
    code = main([*argv, "--json"])
    captured = capsys.readouterr()
    res = json.loads(captured.out)
    res["_stderr"] = captured.err
    return code, res


def build(server: Any, tmp_path: Path, capsys: Any, *extra: str, out: str = "out") -> tuple[int, dict[str, Any]]:
    return run("build", "-r", "app", "--target", LINUX, "--target", "windows-amd64:3.11",
               "--index-url", server.url, "--cache", str(tmp_path / "cache"), "-o", str(tmp_path / out),
               *extra, capsys=capsys)


def test_signed_build_verifies_with_gpgv_and_is_deterministic(index_server: Callable[..., Any], repo: Path,
                                                              tmp_path: Path, gpg_keys: Any,
                                                              capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    server = index_server(repo)
    sign = ("--sign-key", gpg_keys.fpr["good"], "--gnupghome", str(gpg_keys.home))
    code, res = build(server, tmp_path, capsys, *sign, out="a")
    assert code == 0, res
    tar = Path(res["bundle"])
    assert res["wheels"] == 3 and set(res["targets"]) == {"linux-x86_64-cp311-cpu", "windows-amd64-cp311-cpu"}
    assert res["sha256"] == hashlib.sha256(tar.read_bytes()).hexdigest()
    keyring = tmp_path / "k.gpg"
    keyring.write_bytes(subprocess.run(["gpg", "--dearmor"], input=gpg_keys.export("good", path=tmp_path / "k.asc")
                                       .read_bytes(), capture_output=True, check=True).stdout)
    for signed in (tar, tar.with_name("wheelferry-offline.pyz")):
        proc = subprocess.run(["gpgv", "--keyring", str(keyring), f"{signed}.asc", str(signed)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    # A second build from a warm cache makes the same bytes, and downloads nothing.
    files_before = server.count("GET", ".whl")
    code, res2 = build(server, tmp_path, capsys, *sign, out="b")
    assert code == 0, res2
    assert server.count("GET", ".whl") == files_before
    assert Path(res2["bundle"]).read_bytes() == tar.read_bytes()
    assert res2["fetch"]["bytes_downloaded"] == 0


def test_build_from_lock_dir_matches_lock(index_server: Callable[..., Any], repo: Path, tmp_path: Path,
                                          capsys: Any) -> None:
    server = index_server(repo)
    assert run("lock", "-r", "app", "--target", LINUX, "--index-url", server.url, "--cache",
               str(tmp_path / "c"), "-o", str(tmp_path / "lock"), capsys=capsys)[0] == 0
    code, res = run("build", "--lock", str(tmp_path / "lock"), "--no-sign", "--cache", str(tmp_path / "c"),
                    "-o", str(tmp_path / "out"), capsys=capsys)
    assert code == 0, res
    assert res["signed_by"] is None and res["signatures"] == []
    # Without --json the sha256 of the bundle file is printed, for the operator to compare.
    assert main(["build", "--lock", str(tmp_path / "lock"), "--no-sign", "--cache", str(tmp_path / "c"),
                 "-o", str(tmp_path / "out2")]) == 0
    printed = capsys.readouterr()
    digest = hashlib.sha256((tmp_path / "out2" / Path(res["bundle"]).name).read_bytes()).hexdigest()
    assert f"sha256: {digest}  {Path(res['bundle']).name}" in printed.out + printed.err
    assert "UNSIGNED" in res["_stderr"]


def test_hand_edited_lock_is_refused_with_exit_2(index_server: Callable[..., Any], repo: Path, tmp_path: Path,
                                                 capsys: Any) -> None:
    server = index_server(repo)
    lock_dir = tmp_path / "lock"
    assert run("lock", "-r", "app", "--target", LINUX, "--index-url", server.url, "--cache",
               str(tmp_path / "c"), "-o", str(lock_dir), capsys=capsys)[0] == 0
    data = json.loads((lock_dir / "wheelferry.lock.json").read_text())
    del next(iter(data["wheels"].values()))["sha256"]
    (lock_dir / "wheelferry.lock.json").write_text(json.dumps(data))
    code, res = run("build", "--lock", str(lock_dir), "--no-sign", "-o", str(tmp_path / "out"), capsys=capsys)
    assert code == 2 and "sha256" in res["message"]
    assert not (tmp_path / "out").exists()


def _swap_first_two(lock_dir: Path, files: tuple[str, ...]) -> tuple[str, str]:
    """Give the lock's first wheel the second one's sha256 and size, in *files* of the lock dir."""
    data = json.loads((lock_dir / "wheelferry.lock.json").read_text())
    a, b = sorted(data["wheels"].values(), key=lambda w: w["filename"])[:2]
    old_a = a["sha256"]
    for name in files:
        path = lock_dir / name
        path.write_text(path.read_text().replace(old_a, b["sha256"]))
    data = json.loads((lock_dir / "wheelferry.lock.json").read_text())
    for w in data["wheels"].values():
        if w["filename"] == a["filename"]:
            w["size"] = b["size"]
    (lock_dir / "wheelferry.lock.json").write_text(json.dumps(data))
    return a["filename"], b["filename"]


@pytest.mark.parametrize("edited", ["lock only", "every file of the lock"])
def test_a_hash_swapped_by_hand_is_refused(index_server: Callable[..., Any], repo: Path, tmp_path: Path,
                                           capsys: Any, edited: str) -> None:
    server = index_server(repo)
    lock_dir = tmp_path / "lock"
    assert run("lock", "-r", "app", "--target", LINUX, "--index-url", server.url, "--cache",
               str(tmp_path / "c"), "-o", str(lock_dir), capsys=capsys)[0] == 0
    # A first build fills the wheel cache; the swapped hash then finds the other wheel there.
    assert run("build", "--lock", str(lock_dir), "--no-sign", "-o", str(tmp_path / "first"),
               "--cache", str(tmp_path / "c2"), capsys=capsys)[0] == 0
    files = tuple(p.name for p in lock_dir.iterdir()) if edited != "lock only" else ("wheelferry.lock.json",)
    named, holds = _swap_first_two(lock_dir, files)
    before = server.count("GET", ".whl")
    code, res = run("build", "--lock", str(lock_dir), "--no-sign", "-o", str(tmp_path / "out"),
                    "--cache", str(tmp_path / "c2"), capsys=capsys)
    assert code == 2, res
    if edited == "lock only":
        # The pylock and requirements files still name the real hash: refused before any download.
        assert "disagree" in res["message"] and server.count("GET", ".whl") == before
    else:
        # Consistent everywhere: the fetched bytes are the other wheel, caught by its METADATA.
        assert f"{named} is not what its name says" in res["message"]
        assert holds.split("-")[0] in res["message"]
    assert not (tmp_path / "out").exists(), "nothing written to -o"


def test_sequence_and_expiry_count_from_the_build(index_server: Callable[..., Any], repo: Path,
                                                  tmp_path: Path, capsys: Any) -> None:
    import tarfile
    import time

    server = index_server(repo)
    started = int(time.time())
    code, res = build(server, tmp_path, capsys, "--no-sign", "--expires", "30")
    assert code == 0, res
    with tarfile.open(res["bundle"]) as tf:
        member = next(m for m in tf.getmembers() if m.name.endswith("/MANIFEST.json"))
        manifest = json.load(tf.extractfile(member))  # type: ignore[arg-type]
    # The wheels were uploaded long ago (the index's upload times): a later build still
    # gets a later sequence number, and --expires 30 means 30 days from now.
    assert started <= manifest["sequence"] <= int(time.time())
    import datetime as dt
    expires = dt.datetime.fromisoformat(manifest["expires"].replace("Z", "+00:00")).timestamp()
    assert abs(expires - (manifest["sequence"] + 30 * 86400)) < 1
    assert manifest["created"] < manifest["expires"]


def test_unfetchable_wheel_names_file_and_every_url(index_server: Callable[..., Any], repo: Path,
                                                    tmp_path: Path, capsys: Any) -> None:
    server = index_server(repo, corrupt={"dep-1.0-py3-none-any.whl"})
    code, res = build(server, tmp_path, capsys, "--no-sign")
    assert code == 1, res
    assert "dep-1.0-py3-none-any.whl" in res["message"] and "127.0.0.1" in res["message"]
    out = tmp_path / "out"
    assert not out.exists(), "nothing half-written"
    cached = list((tmp_path / "cache").rglob("dep-1.0-py3-none-any.whl"))
    assert cached == [], "a bad download never enters the cache"


@pytest.mark.parametrize("key", ["expired", "missing"])
def test_unusable_signing_key_fails_before_any_download(index_server: Callable[..., Any], repo: Path,
                                                        tmp_path: Path, gpg_keys: Any, capsys: Any,
                                                        key: str) -> None:
    server = index_server(repo)
    fpr = gpg_keys.fpr["expired"] if key == "expired" else "0" * 40
    code, res = build(server, tmp_path, capsys, "--sign-key", fpr, "--gnupghome", str(gpg_keys.home))
    assert code == 1 and res["error"] == "SigningError", res
    assert ("expired on" if key == "expired" else f"no key {fpr} in") in res["message"], res
    assert server.requests == [], "the key is checked before anything is fetched"


def test_zstd_without_zstandard_is_refused_before_anything(index_server: Callable[..., Any], repo: Path,
                                                         tmp_path: Path, capsys: Any,
                                                         monkeypatch: Any) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "zstandard", None)  # as if not installed
    server = index_server(repo)
    code, res = build(server, tmp_path, capsys, "--no-sign", "--compress", "zstd")
    assert code == 2 and "zstandard" in res["message"], res
    assert server.requests == [] and not (tmp_path / "out").exists()


def test_sign_or_no_sign_is_required(tmp_path: Path, capsys: Any) -> None:
    code, res = run("build", "-r", "app", "-o", str(tmp_path / "o"), capsys=capsys)
    assert code == 2 and "--no-sign" in res["message"]
    code, res = run("build", "-r", "app", "--sign-key", "0" * 40, "--no-sign", "-o", str(tmp_path / "o"),
                    capsys=capsys)
    assert code == 2 and "cannot be used together" in res["message"]
    code, res = run("build", "-r", "app", "--sign-key", "0" * 40, "--gnupghome", str(tmp_path / "nope"),
                    "-o", str(tmp_path / "o"), capsys=capsys)
    assert code == 2 and "no such directory" in res["message"]
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="no sha256sum")
def test_bundle_contents_check_with_sha256sum(index_server: Callable[..., Any], repo: Path, tmp_path: Path,
                                              capsys: Any) -> None:
    import tarfile

    server = index_server(repo)
    code, res = build(server, tmp_path, capsys, "--no-sign")
    assert code == 0, res
    with tarfile.open(res["bundle"]) as tf:
        names = tf.getnames()
        tf.extractall(tmp_path / "x", filter="data")
    top = names[0].split("/")[0]
    assert names[0] == f"{top}/MANIFEST.json"
    assert f"{top}/lock/wheelferry.lock.json" in names and f"{top}/sbom.cdx.json" in names
    assert sum(n.startswith(f"{top}/wheels/") and n.endswith(".whl") for n in names) == 3
    proc = subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=tmp_path / "x" / top,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _build_argv(lock_dir: Path, tmp_path: Path) -> list[str]:
    return [sys.executable, "-m", "wheelferry", "build", "--lock", str(lock_dir), "--no-sign",
            "--cache", str(tmp_path / "c"), "-o", str(tmp_path / "out")]


def _paused_build(index_server: Callable[..., Any], repo: Path, tmp_path: Path, capsys: Any,
                  preexec_fn: Callable[[], Any] | None = None) -> tuple[subprocess.Popen[str], Path]:
    """A `build` in a child process, paused with one wheel in its half-written tar."""
    server = index_server(repo)
    lock_dir = tmp_path / "lock"
    assert run("lock", "-r", "app", "--target", LINUX, "--index-url", server.url, "--cache",
               str(tmp_path / "c"), "-o", str(lock_dir), capsys=capsys)[0] == 0
    ready = tmp_path / "ready"
    proc = subprocess.Popen(_build_argv(lock_dir, tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "WHEELFERRY_TEST_PAUSE": f"pack:{ready}"},
                            preexec_fn=preexec_fn)
    deadline = time.monotonic() + 120
    while not ready.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    half = list((tmp_path / "out").glob(".app.tar.*.tmp")) if (tmp_path / "out").is_dir() else []
    assert len(half) == 1 and half[0].stat().st_size > 10_000, list((tmp_path / "out").rglob("*"))
    return proc, lock_dir


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_build_interrupted_by_a_signal_leaves_nothing(index_server: Callable[..., Any], repo: Path,
                                                    tmp_path: Path, capsys: Any, signame: str) -> None:
    proc, _ = _paused_build(index_server, repo, tmp_path, capsys)
    signo = getattr(signal, signame)
    proc.send_signal(signo)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signo, err
    lines = [line for line in err.splitlines() if not line.startswith("warning: ")]
    assert lines == [f"error: interrupted by {signame}; nothing half-written was left in place"], err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()  # made by this run, so removed with what was in it
    assert [p.name for p in (tmp_path / "c").rglob("*.tmp")] == []


def test_a_signal_ignored_at_start_stays_ignored(index_server: Callable[..., Any], repo: Path,
                                                 tmp_path: Path, capsys: Any) -> None:
    # `nohup wheelferry build ...`: SIGHUP is ignored before the run starts, so a closed terminal
    # must not stop it; SIGTERM still ends it cleanly.  Both are pending at once and Python runs
    # their handlers in signal order, so a SIGHUP that was handled would exit 129, not 143.
    proc, _ = _paused_build(index_server, repo, tmp_path, capsys,
                            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    os.kill(proc.pid, signal.SIGSTOP)  # both signals wait until the child runs again
    proc.send_signal(signal.SIGHUP)
    proc.send_signal(signal.SIGTERM)
    os.kill(proc.pid, signal.SIGCONT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "error: interrupted by SIGTERM; nothing half-written was left in place" in err.splitlines(), err
    assert not (tmp_path / "out").exists()


def test_stale_temporary_of_a_killed_build_is_removed_and_named(index_server: Callable[..., Any], repo: Path,
                                                               tmp_path: Path, capsys: Any) -> None:
    proc, lock_dir = _paused_build(index_server, repo, tmp_path, capsys)
    proc.kill()  # SIGKILL: no cleanup can run
    proc.communicate(timeout=60)
    (stale,) = (tmp_path / "out").glob(".app.tar.*.tmp")
    done = subprocess.run(_build_argv(lock_dir, tmp_path), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"warning: removed {stale}, left by an interrupted run" in done.stderr.splitlines()
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")) == []
