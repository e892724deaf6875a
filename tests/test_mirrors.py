"""Lock and build against the server software people run as mirrors, counting every request.

On each set-up, lock + build download each wheel at most once (a wheel read whole while
locking is the one build uses), read each index page once per run, check every hash the
server advertises, and record real sizes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.mirrors import (
    RequestLog,
    devpi,
    http_server,
    nginx,
    pypiserver,
    redirector,
    write_static_tree,
)
from tests.support.wheels import build_wheel
from wheelferry.cli import main

TARGET = "linux-x86_64:3.11"
AUTH = ("alice", "s3cr3t-pw")


@dataclass(frozen=True)
class Mirror:
    name: str
    url: str  # the index URL, credentials included where the server needs them
    wheels: tuple[Path, ...]
    sizes_known: bool  # whether the server gives any way to learn a size before a download


@pytest.fixture(scope="session")
def mirror_wheels(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ...]:
    d = tmp_path_factory.mktemp("mirror-wheels")
    return (build_wheel(d, "app", "1.0", requires=["lib>=1"], padding=150_000),
            build_wheel(d, "lib", "1.0", requires=["util"], padding=120_000),
            build_wheel(d, "util", "1.0", padding=90_000))


def _with_auth(url: str) -> str:
    return url.replace("http://", f"http://{AUTH[0]}:{AUTH[1]}@", 1)


SETUPS = ["http.server", "http.server-nohash", "http.server-md5-pep658", "nginx", "nginx-nohash",
          "pypiserver", "pypiserver-nohash", "pypiserver-md5-auth", "devpi", "redirect"]


@pytest.fixture(scope="session", params=SETUPS)
def mirror(request: pytest.FixtureRequest, mirror_wheels: tuple[Path, ...],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mirror]:
    name: str = request.param
    root = tmp_path_factory.mktemp(name.replace(".", "-"))
    with contextlib.ExitStack() as stack:
        sizes = True
        if name.startswith("http.server") or name == "redirect":
            algo = None if name in ("http.server-nohash", "redirect") else (
                "md5" if "md5" in name else "sha256")
            tree = write_static_tree(root / "tree", mirror_wheels, hash_algo=algo, pep658="pep658" in name)
            url = stack.enter_context(http_server(tree))
            # With a hash and a PEP 658 file nothing reads the wheel while locking, and
            # http.server's pages give no size: that size is unknown until build.
            sizes = "pep658" not in name
            if name == "redirect":
                url = stack.enter_context(redirector(url.rsplit("/simple/", 1)[0]))
        elif name.startswith("nginx"):
            tree = write_static_tree(root / "tree", mirror_wheels,
                                     hash_algo=None if "nohash" in name else "sha256")
            url = stack.enter_context(nginx(tree))
        elif name.startswith("pypiserver"):
            packages = root / "packages"
            packages.mkdir()
            for w in mirror_wheels:
                (packages / w.name).write_bytes(w.read_bytes())
            algo = "off" if "nohash" in name else ("md5" if "md5" in name else "sha256")
            auth = AUTH if "auth" in name else None
            url = stack.enter_context(pypiserver(packages, hash_algo=algo, auth=auth))
            if auth:
                url = _with_auth(url)
        else:
            url = stack.enter_context(devpi(root, mirror_wheels))
            sizes = False  # JSON pages without sizes, no Range, a hash: no download while locking
        yield Mirror(name, url, mirror_wheels, sizes)


def _run(capsys: Any, *argv: str) -> tuple[int, dict[str, Any], str]:
    code = main([*argv, "--json"])
    out = capsys.readouterr()
    return code, json.loads(out.out), out.err


def test_lock_and_build_fetch_every_byte_once(mirror: Mirror, tmp_path: Path, request_log: RequestLog,
                                              capsys: Any) -> None:
    cache, lock_dir = tmp_path / "cache", tmp_path / "lock"
    code, res, err = _run(capsys, "lock", "-r", "app", "--target", TARGET, "--index-url", mirror.url,
                          "--cache", str(cache), "-o", str(lock_dir))
    assert code == 0, (res, err)
    assert res["targets"][0]["packages"] == {"app": "1.0", "lib": "1.0", "util": "1.0"}
    pages = request_log.page_reads()
    assert pages and max(pages.values()) == 1, pages  # each index page read once per run
    lock = json.loads((lock_dir / "wheelferry.lock.json").read_text())
    for w in mirror.wheels:
        entry = lock["wheels"][w.name]
        if mirror.sizes_known:
            assert entry["size"] == w.stat().st_size
        else:
            assert entry["size"] in (None, w.stat().st_size)
    assert res["targets"][0]["bytes"] == (sum(w.stat().st_size for w in mirror.wheels)
                                          if mirror.sizes_known else res["targets"][0]["bytes"])
    assert AUTH[1] not in "".join(p.read_text() for p in lock_dir.iterdir())

    by_lock = {w.name: request_log.whole_downloads(w.name) for w in mirror.wheels}
    request_log.clear()

    build_args = ["--index-url", mirror.url] if "auth" in mirror.name else []
    code, res, err = _run(capsys, "build", "--lock", str(lock_dir), "--no-sign", "--cache", str(cache),
                          "-o", str(tmp_path / "out"), *build_args)
    assert code == 0, (res, err)
    assert res["wheels"] == 3
    for w in mirror.wheels:
        assert by_lock[w.name] + request_log.whole_downloads(w.name) <= 1, (w.name, by_lock, request_log.entries)
    # Everything the lock had to download whole, the build took from the cache.
    assert res["fetch"]["downloaded"] == sum(1 for n in by_lock.values() if n == 0)
    assert res["fetch"]["from_cache"] == sum(by_lock.values())
    assert AUTH[1] not in err


def _lock(capsys: Any, url: str, tmp_path: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    return _run(capsys, "lock", "-r", "app", "--target", TARGET, "--index-url", url,
                "--cache", str(tmp_path / "cache"), "-o", str(tmp_path / "lock"), *extra)


def _build(capsys: Any, tmp_path: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    return _run(capsys, "build", "--lock", str(tmp_path / "lock"), "--no-sign", "--cache",
                str(tmp_path / "cache"), "-o", str(tmp_path / "out"), *extra)


def test_a_wrong_md5_is_named_as_the_index_fault(mirror_wheels: tuple[Path, ...], tmp_path: Path,
                                                 capsys: Any) -> None:
    util = mirror_wheels[2].name
    tree = write_static_tree(tmp_path / "tree", mirror_wheels, hash_algo=None, wrong={util: "md5"})
    with http_server(tree) as url:
        code, res, _ = _lock(capsys, url, tmp_path)
    assert code == 1 and res["error"] == "IndexHashError", res
    assert f"contradicts itself about {util}: md5 " in res["message"]
    assert "locking again would meet the same wrong hash" in res["hint"]
    assert "re-lock" not in res["message"] + res["hint"]
    assert not (tmp_path / "lock").exists()


def test_a_wrong_sha256_is_caught_while_locking_when_the_file_is_read(
        mirror_wheels: tuple[Path, ...], tmp_path: Path, capsys: Any) -> None:
    lib = mirror_wheels[1].name
    tree = write_static_tree(tmp_path / "tree", mirror_wheels, wrong={lib: "sha256"})
    with http_server(tree) as url:  # no Range, no PEP 658: lock reads each wheel whole
        code, res, _ = _lock(capsys, url, tmp_path)
    assert code == 1 and res["error"] == "IndexHashError", res
    assert f"contradicts itself about {lib}: sha256 " in res["message"]


def test_a_wrong_sha256_behind_pep658_fails_the_build_naming_the_index(
        mirror_wheels: tuple[Path, ...], tmp_path: Path, capsys: Any) -> None:
    lib = mirror_wheels[1].name
    tree = write_static_tree(tmp_path / "tree", mirror_wheels, wrong={lib: "sha256"}, pep658=True)
    with http_server(tree) as url:
        code, res, err = _lock(capsys, url, tmp_path)
        assert code == 0, (res, err)  # the wheel itself is never read while locking
        code, res, _ = _build(capsys, tmp_path)
    assert code == 1, res
    assert lib in res["message"] and "sha256 mismatch" in res["message"]
    assert "the index contradicts its own file" in res["hint"]


def test_build_lock_says_once_that_the_lock_holds_no_credentials(
        mirror_wheels: tuple[Path, ...], tmp_path: Path, capsys: Any) -> None:
    packages = tmp_path / "packages"
    packages.mkdir()
    for w in mirror_wheels:
        (packages / w.name).write_bytes(w.read_bytes())
    with pypiserver(packages, auth=AUTH) as url:
        code, res, err = _lock(capsys, _with_auth(url), tmp_path)
        assert code == 0, (res, err)
        main(["build", "--lock", str(tmp_path / "lock"), "--no-sign", "--cache", str(tmp_path / "c2"),
              "-o", str(tmp_path / "out")])
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "refused 3 of 3 wheels (HTTP 401" in errors[0], err
        assert err.count("HTTP 401") == 1 and len(errors[0]) < 200
        assert "the lock holds no credentials" in err and "--index-url https://USER:PASSWORD@HOST" in err
        code, res, err = _run(capsys, "build", "--lock", str(tmp_path / "lock"), "--no-sign", "--cache",
                              str(tmp_path / "c2"), "-o", str(tmp_path / "out"),
                              "--index-url", _with_auth(url))
    assert code == 0 and res["fetch"]["downloaded"] == 3, (res, err)
    written = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert written and not any(AUTH[1].encode() in p.read_bytes() for p in written)


def test_build_lock_fetches_from_the_index_it_is_given(mirror_wheels: tuple[Path, ...], tmp_path: Path,
                                                       capsys: Any, index_server: Any,
                                                       request_log: RequestLog) -> None:
    first = index_server(mirror_wheels[0].parent)
    code, res, err = _lock(capsys, first.url, tmp_path)
    assert code == 0, (res, err)
    first.close()  # the lock's URLs are gone; the same files are on another server
    packages = tmp_path / "packages"
    packages.mkdir()
    for w in mirror_wheels:
        (packages / w.name).write_bytes(w.read_bytes())
    request_log.clear()
    with pypiserver(packages) as url:
        code, res, err = _build(capsys, tmp_path, "--index-url", url)
    assert code == 0 and res["fetch"]["downloaded"] == 3, (res, err)
    assert all(request_log.whole_downloads(w.name) == 1 for w in mirror_wheels)
    assert {p for _m, p, s, _r in request_log.entries if s == 200 and p.endswith(".whl")} == {
        f"/packages/{w.name}" for w in mirror_wheels}


def test_a_find_links_page_is_read_once_per_run(mirror_wheels: tuple[Path, ...], tmp_path: Path,
                                                capsys: Any, request_log: RequestLog) -> None:
    tree = write_static_tree(tmp_path / "tree", mirror_wheels)
    with http_server(tree) as url:
        links = url.replace("/simple/", "/files/")  # http.server's directory listing
        code, res, err = _run(capsys, "lock", "-r", "app", "--target", TARGET, "--no-index",
                              "--find-links", links, "--cache", str(tmp_path / "cache"),
                              "-o", str(tmp_path / "lock"))
    assert code == 0, (res, err)
    assert request_log.page_reads() == {"/files/": 1}
    assert all(request_log.whole_downloads(w.name) == 1 for w in mirror_wheels)


@pytest.mark.parametrize("algo", [None, "md5"])
def test_a_second_lock_and_build_on_a_no_hash_index_download_nothing(
        algo: str | None, mirror_wheels: tuple[Path, ...], tmp_path: Path, request_log: RequestLog,
        capsys: Any) -> None:
    """No sha256 on the links, no Range: the sha256 lock learnt from its downloads is kept in
    the cache, so a later lock (and its build) fetch no wheel again; a file gone from the
    cache, or a page that now describes another file, is fetched again."""
    tree = write_static_tree(tmp_path / "tree", mirror_wheels, hash_algo=algo)
    cache = tmp_path / "cache"

    def lock(out: str) -> dict[str, Any]:
        code, res, err = _run(capsys, "lock", "-r", "app", "--target", TARGET, "--index-url", url,
                              "--cache", str(cache), "-o", str(tmp_path / out))
        assert code == 0, (res, err)
        return json.loads((tmp_path / out / "wheelferry.lock.json").read_text())

    with http_server(tree) as url:
        first = lock("one")
        assert all(request_log.whole_downloads(w.name) == 1 for w in mirror_wheels), request_log.entries
        request_log.clear()
        second = lock("two")
        assert [e for e in request_log.entries if e[1].endswith(".whl")] == []
        assert second["wheels"] == first["wheels"]  # the same sha256 and sizes
        code, res, err = _run(capsys, "build", "--lock", str(tmp_path / "two"), "--no-sign", "--cache",
                              str(cache), "-o", str(tmp_path / "out"))
        assert code == 0, (res, err)
        assert res["fetch"]["downloaded"] == 0 and res["fetch"]["from_cache"] == 3
        assert [e for e in request_log.entries if e[1].endswith(".whl")] == []
        records = list((cache / "wheels" / "urls").rglob("*.json"))
        assert len(records) == 3 and not any(b"127.0.0.1" in r.read_bytes() for r in records)

        # A wheel no longer in the cache is fetched again (once), whatever was learnt.
        util = mirror_wheels[2]
        shutil.rmtree(cache / "wheels" / "sha256" / first["wheels"][util.name]["sha256"][:2])
        lock("three")
        assert request_log.whole_downloads(util.name) == 1
        # The file behind the URL changed: with md5 the page says so, and the new file is read.
        if algo == "md5":
            request_log.clear()
            changed = build_wheel(tmp_path / "new", "util", "1.0", padding=91_000)
            write_static_tree(tmp_path / "tree", [*mirror_wheels[:2], changed], hash_algo=algo)
            page = tree / "simple" / "util" / "index.html"
            later = page.stat().st_mtime + 10  # Last-Modified has whole seconds: make it newer
            os.utime(page, (later, later))
            new = lock("four")
            assert request_log.whole_downloads(util.name) == 1
            assert new["wheels"][util.name]["sha256"] != first["wheels"][util.name]["sha256"]
