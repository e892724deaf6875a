"""`wheelferry lock` end to end against a real loopback index of real tiny wheels."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
from packaging.pylock import Pylock

from tests.support.pythons import pip_for, pipless_venv
from tests.support.wheels import build_wheel
from wheelferry.cli import main
from wheelferry.target import host_target

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

WIN = "windows-amd64:3.11"
LINUX = "linux-x86_64:3.11"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A small universe of real wheels exercising markers, tags, extras and exclusions."""
    d = tmp_path / "wheels"
    build_wheel(d, "app", "1.0", requires=[
        'winonly; sys_platform == "win32"', 'linuxonly; sys_platform == "linux"', "native>=1", "big",
        "newpy",
    ], extras={"fast": ["speedup"]})
    build_wheel(d, "winonly", "1.0")
    build_wheel(d, "linuxonly", "1.0")
    build_wheel(d, "speedup", "1.0")
    build_wheel(d, "native", "1.0", tag="cp311-cp311-win_amd64")
    build_wheel(d, "native", "1.0", tag="cp311-cp311-manylinux_2_17_x86_64")
    build_wheel(d, "native", "2.0", tag="cp311-cp311-manylinux_2_17_x86_64")
    build_wheel(d, "big", "1.0", requires=["bigdep", "shared"], padding=50_000)
    build_wheel(d, "bigdep", "1.0", padding=20_000)
    build_wheel(d, "shared", "1.0")
    build_wheel(d, "newpy", "1.0")
    build_wheel(d, "newpy", "2.0", requires_python=">=3.12")
    build_wheel(d, "yanky", "1.0")
    build_wheel(d, "yanky", "2.0")
    (d / "onlysdist-1.0.tar.gz").write_bytes(b"not really")
    return d


def run(*argv: str, capsys: Any) -> tuple[int, dict[str, Any]]:
    code = main([*argv, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


def lock(server: Any, tmp_path: Path, capsys: Any, *args: str) -> tuple[int, dict[str, Any]]:
    return run("lock", *args, "--index-url", server.url, "--cache", str(tmp_path / "cache"), capsys=capsys)


def test_markers_and_tags_are_judged_for_the_target(index_server: Callable[..., Any], repo: Path,
                                                    tmp_path: Path, capsys: Any) -> None:
    server = index_server(repo)
    code, res = lock(server, tmp_path, capsys, "-r", "app", "--target", WIN, "--target", LINUX,
                     "-o", str(tmp_path / "out"))
    assert code == 0, res
    win, lin = (t["packages"] for t in res["targets"])
    assert "winonly" in win and "linuxonly" not in win
    assert "linuxonly" in lin and "winonly" not in lin
    assert win["native"] == "1.0", "2.0 has no Windows wheel"
    assert lin["native"] == "2.0"
    assert win["newpy"] == "1.0", "2.0 needs Python 3.12"
    assert "speedup" not in win, "extras are not pulled unless asked for"
    data = json.loads((tmp_path / "out" / "wheelferry.lock.json").read_text())
    wheels = {p["name"]: p["wheel"] for p in data["targets"][0]["packages"]}
    assert wheels["native"].endswith("win_amd64.whl")
    trimmed = data["targets"][0]["trimmed"]
    assert {"parent": "app", "reason": "extra", "requirement": 'speedup; extra == "fast"'} in trimmed


def test_extras_and_exclusion_with_trim_report(index_server: Callable[..., Any], repo: Path,
                                               tmp_path: Path, capsys: Any) -> None:
    server = index_server(repo)
    code, res = lock(server, tmp_path, capsys, "-r", "app[fast]", "--target", LINUX,
                     "--exclude", "big", "-o", str(tmp_path / "out"))
    assert code == 0, res
    pkgs = res["targets"][0]["packages"]
    assert "speedup" in pkgs
    assert not {"big", "bigdep", "shared"} & set(pkgs)
    report = res["trimmed"][0]
    assert {r["name"] for r in report["removed"]} == {"big", "bigdep", "shared"}
    assert report["saved-bytes"] > 70_000
    assert all(r["size"] for r in report["removed"])
    big = next(r for r in report["removed"] if r["name"] == "big")
    assert big["declared-by"] == ["app"]
    data = json.loads((tmp_path / "out" / "wheelferry.lock.json").read_text())
    assert {"parent": "app", "reason": "excluded", "requirement": "big"} in data["targets"][0]["trimmed"]


def test_an_exclude_that_cuts_nothing_is_warned_about(index_server: Callable[..., Any], repo: Path,
                                                      tmp_path: Path, capsys: Any) -> None:
    server = index_server(repo)
    code = main(["lock", "-r", "app", "--target", LINUX, "--exclude", "bgi", "--exclude", "big",
                 "--index-url", server.url, "--cache", str(tmp_path / "cache"), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 0
    assert "--exclude bgi: nothing in any target's tree depends on it (misspelt?)" in err
    assert "--exclude big:" not in err


def test_lock_is_byte_identical_and_pylock_loads(index_server: Callable[..., Any], repo: Path,
                                                 tmp_path: Path, capsys: Any) -> None:
    server = index_server(repo, mode="html")
    outs = []
    for n in range(2):
        out = tmp_path / f"out{n}"
        assert lock(server, tmp_path, capsys, "-r", "app", "--target", LINUX, "-o", str(out))[0] == 0
        outs.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
    assert outs[0] == outs[1]
    names = sorted(outs[0])
    assert names == ["pylock.linux-x86_64-cp311-cpu.toml", "requirements.linux-x86_64-cp311-cpu.txt",
                     "wheelferry.lock.json"]
    pylock = Pylock.from_dict(tomllib.loads(outs[0][names[0]].decode()))
    assert {p.name for p in pylock.packages} >= {"app", "native", "linuxonly"}


def test_the_command_line_process_hands_its_objects_to_the_os_unsearched(
        index_server: Callable[..., Any], repo: Path, tmp_path: Path, capsys: Any) -> None:
    """As a process of its own, wheelferry freezes what it made before the interpreter's
    teardown, which would search every object for cycles; called in-process, it does not."""
    server = index_server(repo)
    script = ("import atexit, gc\n"
              "atexit.register(lambda: print('frozen', gc.get_freeze_count(), gc.get_threshold()[0]))\n"
              "from wheelferry.cli import main\n"
              "raise SystemExit(main())\n")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-c", script, "lock", "-r", "app", "--target", LINUX,
                           "--index-url", server.url, "--cache", str(tmp_path / "cache"), "-o", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (out / "wheelferry.lock.json").is_file()
    frozen, threshold = proc.stdout.rsplit("frozen ", 1)[1].split()
    assert int(frozen) > 1000 and int(threshold) == 7000  # and it collected young objects less often
    before = gc.get_freeze_count(), gc.get_threshold()
    assert lock(server, tmp_path, capsys, "-r", "app", "--target", LINUX, "-o", str(tmp_path / "o2"))[0] == 0
    assert (gc.get_freeze_count(), gc.get_threshold()) == before


def test_the_requirements_pages_are_being_read_while_the_resolver_loads(
        index_server: Callable[..., Any], repo: Path, tmp_path: Path) -> None:
    server = index_server(repo, slow=0.3)  # a root page read ahead is still under way a while
    script = ("import sys, threading\n"
              "def seen(event, args):\n"
              "    if event == 'import' and args[0] == 'wheelferry.resolver':\n"
              "        reading = [t.name for t in threading.enumerate() if t.name.startswith('wheelferry-page-')]\n"
              "        print('reading when the resolver loads:', ' '.join(reading) or '-', flush=True)\n"
              "sys.addaudithook(seen)\n"
              "from wheelferry.cli import main\n"
              "raise SystemExit(main())\n")
    proc = subprocess.run([sys.executable, "-c", script, "lock", "-r", "shared", "--target", LINUX,
                           "--index-url", server.url, "--cache", str(tmp_path / "cache"), "-o", str(tmp_path / "o")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "reading when the resolver loads: wheelferry-page-shared\n" in proc.stdout, proc.stdout
    assert server.count("GET", "/simple/shared/") == 1  # read once, by the thread that read it ahead


def test_yanked_is_skipped_unless_pinned(index_server: Callable[..., Any], repo: Path,
                                         tmp_path: Path, capsys: Any) -> None:
    server = index_server(repo, yanked={"yanky-2.0-py3-none-any.whl": "broken"})
    assert lock(server, tmp_path, capsys, "-r", "yanky", "--target", LINUX,
                "-o", str(tmp_path / "a"))[1]["targets"][0]["packages"] == {"yanky": "1.0"}
    assert lock(server, tmp_path, capsys, "-r", "yanky==2.0", "--target", LINUX,
                "-o", str(tmp_path / "b"))[1]["targets"][0]["packages"] == {"yanky": "2.0"}


def test_an_arbitrary_equality_that_is_no_version_matches_nothing(
        index_server: Callable[..., Any], repo: Path, tmp_path: Path, capsys: Any) -> None:
    server = index_server(repo)
    code, res = lock(server, tmp_path, capsys, "-r", "yanky===bad[", "--target", LINUX,
                     "-o", str(tmp_path / "o"))
    assert code == 1 and res["error"] == "NoSuchVersionError", res
    assert res["message"] == "yanky===bad[ was requested: no such version (newest: 2.0)"
    assert not (tmp_path / "o").exists()


def test_no_wheel_for_target_names_package_target_and_files(index_server: Callable[..., Any], repo: Path,
                                                            tmp_path: Path, capsys: Any) -> None:
    server = index_server(repo)
    code, res = lock(server, tmp_path, capsys, "-r", "native==2.0", "--target", WIN, "-o", str(tmp_path / "o"))
    assert code == 1
    assert res["error"] == "NoWheelError"
    msg = res["message"]
    assert "native" in msg and "windows-amd64-cp311-cpu" in msg and "manylinux_2_17_x86_64" in msg
    code, res = lock(server, tmp_path, capsys, "-r", "onlysdist", "--target", LINUX, "-o", str(tmp_path / "o"))
    assert code == 1 and "onlysdist-1.0.tar.gz" in res["message"]
    assert not (tmp_path / "o").exists(), "no partial lock directory"


def test_conflict_names_who_asked_for_what(index_server: Callable[..., Any], repo: Path, tmp_path: Path,
                                          capsys: Any) -> None:
    build_wheel(repo, "left", "1.0", requires=["shared<1"])
    server = index_server(repo)
    code, res = lock(server, tmp_path, capsys, "-r", "left", "-r", "shared==1.0", "--target", LINUX,
                     "-o", str(tmp_path / "o"))
    assert code == 1 and res["error"] == "ConflictError", res
    msg = res["message"]
    assert "left 1.0 needs shared<1" in msg and "shared==1.0 was requested" in msg, msg
    assert "releases with a wheel for the target: 1.0" in msg
    assert "sdist" not in msg + res.get("hint", "") and "no wheel" not in msg


def test_a_version_that_does_not_exist_says_so_with_the_nearest(
        index_server: Callable[..., Any], repo: Path, tmp_path: Path, capsys: Any) -> None:
    for v in ("2.30.0", "2.31.0", "2.32.3", "3.0.0b1"):
        build_wheel(repo, "requests", v)
    server = index_server(repo)
    code, res = lock(server, tmp_path, capsys, "-r", "requests==9.9", "--target", LINUX)
    assert code == 1 and res["error"] == "NoSuchVersionError", res
    assert res["message"] == "requests==9.9 was requested: no such version (newest: 2.32.3)"
    code, res = lock(server, tmp_path, capsys, "-r", "requests==2.31.5", "--target", LINUX)
    assert res["message"] == ("requests==2.31.5 was requested: no such version "
                              "(nearest: 2.30.0, 2.31.0, 2.32.3; newest: 2.32.3)")
    build_wheel(repo, "wantsold", "1.0", requires=["shared==0.5"])
    code, res = lock(server, tmp_path, capsys, "-r", "wantsold", "--target", LINUX)
    assert res["message"] == "wantsold 1.0 needs shared==0.5: no such version (newest: 1.0)"


def test_an_unknown_project_is_no_such_project(index_server: Callable[..., Any], repo: Path,
                                               tmp_path: Path, capsys: Any) -> None:
    server = index_server(repo)
    code, res = lock(server, tmp_path, capsys, "-r", "reqeusts", "--target", LINUX)
    assert code == 1 and res["error"] == "NoSuchProjectError", res
    assert res["message"].startswith("no such project: reqeusts (reqeusts was requested)")
    assert "sdist" not in res["message"] + res["hint"] and "spelling" in res["hint"]
    build_wheel(repo, "typo", "1.0", requires=["nothere>=1"])
    code, res = lock(server, tmp_path, capsys, "-r", "typo", "--target", LINUX)
    assert res["message"].startswith("no such project: nothere (typo 1.0 needs nothere>=1)"), res


def test_a_pinned_yanked_release_is_warned_with_its_reason(
        index_server: Callable[..., Any], repo: Path, tmp_path: Path, capsys: Any) -> None:
    server = index_server(repo, yanked={"yanky-2.0-py3-none-any.whl": "broken"})
    code = main(["lock", "-r", "yanky==2.0", "--target", LINUX, "--target", WIN, "--index-url", server.url,
                 "--cache", str(tmp_path / "c"), "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 0
    assert err.count('warning: `yanky==2.0` is yanked (reason: "broken")') == 1, err
    code = main(["lock", "-r", "yanky", "--target", LINUX, "--index-url", server.url,
                 "--cache", str(tmp_path / "c"), "-o", str(tmp_path / "o2")])
    assert code == 0 and "yanked" not in capsys.readouterr().err, "1.0 is chosen: nothing to warn of"
    code, res = lock(server, tmp_path, capsys, "-r", "yanky>1.5", "--target", LINUX)
    assert code == 1 and res["message"] == ("yanky>1.5 was requested: the only matching releases for "
                                            "target linux-x86_64-cp311-cpu are yanked: 2.0 (reason: 'broken')")


@pytest.mark.parametrize("argv,match", [
    (["-r", "app", "--target", "linux-x86_64"], "PLATFORM:PYTHON"),
    (["-r", "app>>1"], "not a valid requirement"),
    (["--target", LINUX], "nothing to lock"),
])
def test_bad_input_exits_2(argv: list[str], match: str, tmp_path: Path, capsys: Any) -> None:
    code, res = run("lock", *argv, "-o", str(tmp_path / "o"), capsys=capsys)
    assert code == 2 and match in res["message"]
    assert not (tmp_path / "o").exists()


def test_malformed_spec_exits_2(tmp_path: Path, capsys: Any) -> None:
    spec = tmp_path / "s.toml"
    spec.write_text("requirements = [")
    code, res = run("lock", str(spec), capsys=capsys)
    assert code == 2 and "not valid TOML" in res["message"]


def test_unreachable_index_exits_1_without_credentials(tmp_path: Path, capsys: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    monkeypatch.setenv("PIP_RETRIES", "1")  # the retry path runs once, without the default's backoff sleeps
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, res = run("lock", "-r", "app", "--target", LINUX, "--index-url",
                    f"http://user:hunter2@127.0.0.1:{port}/simple", "--cache", str(tmp_path / "c"),
                    "-o", str(tmp_path / "o"), capsys=capsys)
    assert code == 1 and "hunter2" not in json.dumps(res)
    assert "127.0.0.1" in res["message"]
    assert not (tmp_path / "o").exists()


def test_credentials_are_used_but_never_written(index_server: Callable[..., Any], repo: Path,
                                                tmp_path: Path, capsys: Any) -> None:
    server = index_server(repo, auth=("alice", "s3cret"))
    url = server.url.replace("http://", "http://alice:s3cret@")
    code, res = run("lock", "-r", "shared", "--target", LINUX, "--index-url", url,
                    "--cache", str(tmp_path / "c"), "-o", str(tmp_path / "o"), capsys=capsys)
    assert code == 0, res
    for f in (tmp_path / "o").iterdir():
        assert "s3cret" not in f.read_text() and "alice" not in f.read_text()


def test_requirements_file_installs_with_stock_pip(index_server: Callable[..., Any], tmp_path: Path,
                                                   capsys: Any) -> None:
    d = tmp_path / "w"
    build_wheel(d, "alpha", "1.0", requires=["beta>=1"])
    build_wheel(d, "beta", "1.0")
    build_wheel(d, "beta", "2.0")
    server = index_server(d)
    code, res = run("lock", "-r", "alpha", "--index-url", server.url, "--cache", str(tmp_path / "c"),
                    "-o", str(tmp_path / "o"), capsys=capsys)
    assert code == 0, res
    tid = host_target().id
    env = tmp_path / "venv"
    py = pipless_venv(env)
    proc = subprocess.run([*pip_for(py), "install", "-q", "--no-index", "--find-links", str(d),
                           "--require-hashes", "-r", str(tmp_path / "o" / f"requirements.{tid}.txt")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = subprocess.run([str(py), "-c", "import alpha, beta; print(beta.__version__)"],
                         capture_output=True, text=True)
    assert out.stdout.strip() == "2.0"


def test_warm_lock_needs_no_request_when_the_index_allows_caching(
        index_server: Callable[..., Any], repo: Path, tmp_path: Path, capsys: Any) -> None:
    server = index_server(repo, max_age=600)  # as public indexes say of their pages
    first = lock(server, tmp_path, capsys, "-r", "app", "--target", LINUX, "-o", str(tmp_path / "a"))
    asked = len(server.requests)
    assert first[0] == 0 and asked > 0
    second = lock(server, tmp_path, capsys, "-r", "app", "--target", LINUX, "-o", str(tmp_path / "b"))
    assert second[0] == 0 and second[1]["targets"] == first[1]["targets"]
    assert len(server.requests) == asked  # pages from the page cache, metadata from its cache
    assert (tmp_path / "a" / "wheelferry.lock.json").read_bytes() == \
        (tmp_path / "b" / "wheelferry.lock.json").read_bytes()


def test_no_wheel_says_when_requires_python_shut_every_wheel_out(
        index_server: Callable[..., Any], tmp_path: Path, capsys: Any) -> None:
    """As pip's and uv's messages do: the releases with wheels need a newer Python; the newest
    release that allows the target's Python is named, with what it lacks."""
    d = tmp_path / "w"
    build_wheel(d, "dropped", "2.0", requires_python=">=3.12")
    build_wheel(d, "dropped", "3.0", requires_python=">=3.12")
    (d / "dropped-1.5.tar.gz").write_bytes(b"not really")
    build_wheel(d, "moved", "2.0", requires_python=">=3.12")
    build_wheel(d, "moved", "1.0", tag="cp311-cp311-win_amd64")
    rp = {"dropped-2.0-py3-none-any.whl": ">=3.12", "dropped-3.0-py3-none-any.whl": ">=3.12",
          "dropped-1.5.tar.gz": ">=3.8", "moved-2.0-py3-none-any.whl": ">=3.12"}
    server = index_server(d, requires_python=rp)
    code, res = lock(server, tmp_path, capsys, "-r", "dropped", "--target", LINUX, "-o", str(tmp_path / "o"))
    assert code == 1 and res["error"] == "NoWheelError", res
    assert res["message"] == (
        "no wheel of dropped (any version) for target linux-x86_64-cp311-cpu (Python 3.11, linux-x86_64): "
        "every release with a wheel for linux-x86_64 requires Python >=3.12 "
        "(newest that allows Python 3.11: dropped 1.5, sdist only)")
    assert res["hint"] == "lock for a Python these releases support"
    code, res = lock(server, tmp_path, capsys, "-r", "moved", "--target", LINUX, "-o", str(tmp_path / "o"))
    assert code == 1 and res["message"].endswith(
        "requires Python >=3.12 (newest that allows Python 3.11: moved 1.0, no wheel for linux-x86_64)"), res
    code, res = lock(server, tmp_path, capsys, "-r", "moved", "--target", WIN, "-o", str(tmp_path / "o"))
    assert code == 0, res  # 1.0 fits Windows: chosen, as pip would
    assert not (tmp_path / "o" / "wheelferry.lock.json").read_text().count("moved-2.0")


def test_no_wheel_for_this_host_does_not_advise_another_target(
        index_server: Callable[..., Any], tmp_path: Path, capsys: Any) -> None:
    d = tmp_path / "w"
    build_wheel(d, "winbin", "1.0", tag="cp311-cp311-win_amd64")
    server = index_server(d)
    code, res = lock(server, tmp_path, capsys, "-r", "winbin")  # no --target: this host
    assert code == 1 and res["error"] == "NoWheelError", res
    assert "win_amd64" in res["message"] and "target" not in res["hint"], res["hint"]
    code, res = lock(server, tmp_path, capsys, "-r", "winbin", "--target", "linux-aarch64:3.11")
    assert "choose another version or target" in res["hint"]


def test_a_python_range_rule_narrows_the_candidates_instead_of_refusing(
        index_server: Callable[..., Any], tmp_path: Path, capsys: Any) -> None:
    """Shipped rule tf-python-range: 2.21 has no build for Python 3.9, so 2.20.0 is chosen, as pip does.

    The 2.21.0 wheel here claims every Python (py3-none-any, no Requires-Python): only the rule
    keeps it out, for the package asked for and for the same package pulled in by another.
    """
    d = tmp_path / "w"
    build_wheel(d, "tensorflow", "2.20.0", tag="cp39-cp39-win_amd64", requires_python=">=3.9")
    build_wheel(d, "tensorflow", "2.21.0")
    build_wheel(d, "tfuser", "1.0", requires=["tensorflow>=2.20"])
    server = index_server(d)
    for req in ("tensorflow", "tfuser"):
        code, res = lock(server, tmp_path, capsys, "-r", req, "--target", "windows-amd64:3.9",
                         "-o", str(tmp_path / req))
        assert code == 0, res
        assert res["targets"][0]["packages"]["tensorflow"] == "2.20.0"
    code, res = lock(server, tmp_path, capsys, "-r", "tensorflow==2.21.0", "--target", "windows-amd64:3.9")
    assert code == 1 and res["error"] == "RuleError"
    assert res["message"] == ("tensorflow 2.21.0 supports Python 3.10, 3.11, 3.12, 3.13; "
                              "target windows-amd64-cp39-cpu has Python 3.9")
    assert res["hint"].startswith("ask for tensorflow==2.20.0, the newest release for Python 3.9; or choose")
