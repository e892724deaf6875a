"""The fetcher against a real loopback index: parallel, resumable, hashed, failing over."""

from __future__ import annotations

import json
import multiprocessing
import shutil
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import requests

import wheelferry.cache
from tests.support.indexserver import IndexServer
from tests.support.wheels import build_wheel, sha256_file
from wheelferry.cache import WheelCache
from wheelferry.errors import FetchError
from wheelferry.fetch import NET_CHUNK, FetchEvent, WheelDownloadError, fetch_summary, fetch_wheels
from wheelferry.lockfile import WheelFile

MiB = 1 << 20
Server = Callable[..., IndexServer]


def locked(path: Path, *urls: str, size: int | None = -1) -> WheelFile:
    """The lock's record of a wheel file served at *urls*."""
    return WheelFile(path.name, sha256_file(path), path.stat().st_size if size == -1 else size,
                     tuple(urls))


def session() -> requests.Session:
    return requests.Session()


def gets(server: IndexServer, filename: str) -> list[str | None]:
    """The Range header of every GET of *filename* (None when the whole file was asked)."""
    with server.lock:
        return [r for m, p, r in server.requests if m == "GET" and p == f"/files/{filename}"]


def cache_entries(root: Path) -> list[Path]:
    return sorted(p for p in (root / "sha256").rglob("*") if p.is_file())


@pytest.fixture(params=["hashed inline", "hashed on its own thread"])
def big(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A 2.5 MiB wheel (incompressible padding), so a drop can happen after the first chunk.

    Every test of it runs twice: with the hash computed as the bytes are written, and on a
    thread of its own (as for the largest wheels).
    """
    monkeypatch.setattr(wheelferry.cache, "BACKGROUND_HASH_MIN",
                        MiB if request.param == "hashed on its own thread" else 1 << 40)
    return build_wheel(tmp_path / "wheels", "bigpkg", "1.0", padding=int(2.5 * MiB))


def test_parallel_download_of_many_files(tmp_path: Path, index_server: Server) -> None:
    for i in range(30):
        build_wheel(tmp_path / "wheels", f"pkg{i}", "1.0", padding=MiB + i * 4096 if i % 5 == 0 else 0)
    server = index_server(tmp_path / "wheels")
    wheels = [locked(p, server.file_url(p.name)) for p in sorted((tmp_path / "wheels").iterdir())]
    cache = WheelCache(tmp_path / "cache")
    results = fetch_wheels(wheels, cache, session(), jobs=8)
    assert [r.wheel for r in results] == wheels
    for r in results:
        assert not r.from_cache and r.url_used == r.wheel.urls[0]
        assert r.path == cache.path(r.wheel.sha256) and r.path.name == r.wheel.filename
        assert sha256_file(r.path) == r.wheel.sha256
        assert r.downloaded_bytes == r.wheel.size
    assert not list((tmp_path / "cache" / "partial").iterdir())
    summary = fetch_summary(results)
    assert summary["files"] == summary["downloaded"] == 30
    assert summary["bytes_downloaded"] == sum(w.size or 0 for w in wheels)

    before = len(server.requests)
    again = fetch_wheels(wheels, cache, session(), jobs=8)
    assert all(r.from_cache and r.downloaded_bytes == 0 for r in again)
    assert len(server.requests) == before
    assert fetch_summary(again)["bytes_from_cache"] == summary["bytes_downloaded"]


def test_every_job_keeps_its_connection_to_the_index(tmp_path: Path, index_server: Server) -> None:
    """24 jobs hold 24 connections at once; all of them stay open for the session's next fetch."""
    for i in range(48):
        build_wheel(tmp_path / "wheels", f"pkg{i:02}", "1.0")
    server = index_server(tmp_path / "wheels", together=24)  # every response waits until 24 are asked
    wheels = [locked(p, server.file_url(p.name)) for p in sorted((tmp_path / "wheels").iterdir())]
    s, cache = session(), WheelCache(tmp_path / "cache")
    first = fetch_wheels(wheels[:24], cache, s, jobs=24)
    assert server.connections == 24
    second = fetch_wheels(wheels[24:], cache, s, jobs=24)
    assert [r.wheel for r in first + second] == wheels and not any(r.from_cache for r in first + second)
    assert server.count("GET", ".whl") == 48
    assert server.connections == 24, "a connection was dropped and dialled again"


def test_a_dropped_connection_resumes_with_range(tmp_path: Path, index_server: Server, big: Path) -> None:
    server = index_server(big.parent, drop_after={big.name: int(1.5 * MiB)})
    w = locked(big, server.file_url(big.name))
    [r] = fetch_wheels([w], WheelCache(tmp_path / "cache"), session())
    ranges = gets(server, big.name)
    assert ranges[0] is None and len(ranges) == 2
    assert ranges[1] is not None and ranges[1].startswith("bytes=") and ranges[1] != "bytes=0-"
    assert sha256_file(r.path) == w.sha256
    # Only the missing tail was sent again.
    assert r.downloaded_bytes == w.size


def test_a_server_that_ignores_range_restarts_from_zero(
        tmp_path: Path, index_server: Server, big: Path) -> None:
    server = index_server(big.parent, range=False, drop_after={big.name: int(1.5 * MiB)})
    w = locked(big, server.file_url(big.name))
    [r] = fetch_wheels([w], WheelCache(tmp_path / "cache"), session())
    assert len(gets(server, big.name)) == 2 and gets(server, big.name)[1] is not None
    assert sha256_file(r.path) == w.sha256
    assert r.downloaded_bytes > w.size  # type: ignore[operator]


def test_an_interrupted_partial_is_resumed_by_the_next_fetch(
        tmp_path: Path, index_server: Server, big: Path) -> None:
    server = index_server(big.parent)
    w = locked(big, server.file_url(big.name))
    cache = WheelCache(tmp_path / "cache")

    def interrupt(event: FetchEvent) -> None:
        if event.kind == "bytes":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fetch_wheels([w], cache, session(), on_event=interrupt)
    assert cache.path(w.sha256) is None and cache_entries(tmp_path / "cache") == []
    assert cache.partial_path(w.sha256).stat().st_size == NET_CHUNK  # the one read that was kept

    [r] = fetch_wheels([w], cache, session())
    assert gets(server, big.name)[-1] == f"bytes={NET_CHUNK}-"
    assert r.downloaded_bytes == w.size - NET_CHUNK  # type: ignore[operator]
    assert sha256_file(r.path) == w.sha256


def test_a_partial_that_does_not_hash_is_discarded(
        tmp_path: Path, index_server: Server, big: Path) -> None:
    server = index_server(big.parent)
    w = locked(big, server.file_url(big.name))
    cache = WheelCache(tmp_path / "cache")
    part = cache.partial_path(w.sha256)
    part.parent.mkdir(parents=True)
    part.write_bytes(b"\0" * 1000)  # a stale partial from something else
    [r] = fetch_wheels([w], cache, session())
    assert gets(server, big.name) == ["bytes=1000-", None]
    assert sha256_file(r.path) == w.sha256 and not part.exists()


def test_server_errors_are_retried(tmp_path: Path, index_server: Server) -> None:
    wheel = build_wheel(tmp_path / "wheels", "flaky", "1.0")
    server = index_server(tmp_path / "wheels", fail={wheel.name: 2})
    events: list[FetchEvent] = []
    [r] = fetch_wheels([locked(wheel, server.file_url(wheel.name))], WheelCache(tmp_path / "c"),
                       session(), on_event=events.append)
    assert len(gets(server, wheel.name)) == 3
    assert [e.message for e in events if e.kind == "retry"] == ["HTTP 500", "HTTP 500"]
    assert sha256_file(r.path) == r.wheel.sha256


def test_wrong_bytes_fail_over_to_the_next_url(tmp_path: Path, index_server: Server) -> None:
    wheel = build_wheel(tmp_path / "wheels", "demo", "1.0", padding=MiB)
    bad = index_server(tmp_path / "wheels", corrupt={wheel.name})
    good = index_server(tmp_path / "wheels")
    events: list[FetchEvent] = []
    cache = WheelCache(tmp_path / "c")
    [r] = fetch_wheels([locked(wheel, bad.file_url(wheel.name), good.file_url(wheel.name))],
                       cache, session(), on_event=events.append)
    assert r.url_used == good.file_url(wheel.name)
    assert sha256_file(r.path) == r.wheel.sha256
    [failover] = [e for e in events if e.kind == "failover"]
    assert failover.url == bad.file_url(wheel.name) and "sha256 mismatch" in failover.message
    assert cache_entries(tmp_path / "c") == [r.path]


def test_an_html_page_with_status_200_is_named(tmp_path: Path, index_server: Server) -> None:
    wheel = build_wheel(tmp_path / "wheels", "demo", "1.0")
    server = index_server(tmp_path / "wheels", html_200={wheel.name})
    cache = WheelCache(tmp_path / "c")
    with pytest.raises(WheelDownloadError) as info:
        fetch_wheels([locked(wheel, server.file_url(wheel.name))], cache, session())
    assert "got an HTML page instead of the wheel" in str(info.value)
    assert cache_entries(tmp_path / "c") == []


def test_html_is_caught_by_content_even_without_the_header(tmp_path: Path) -> None:
    page = tmp_path / "page.whl"
    page.write_bytes(b"\n<!DOCTYPE html><html><body>Sign in</body></html>\n")
    wheel = build_wheel(tmp_path / "wheels", "demo", "1.0")
    w = WheelFile(wheel.name, sha256_file(wheel), None, (page.as_uri(), wheel.as_uri()))
    events: list[FetchEvent] = []
    [r] = fetch_wheels([w], WheelCache(tmp_path / "c"), session(), on_event=events.append)
    assert [e.message for e in events if e.kind == "failover"] == [
        "got an HTML page instead of the wheel"]
    assert r.url_used == wheel.as_uri() and sha256_file(r.path) == w.sha256


def test_every_url_failing_lists_each_redacted_url_and_reason(
        tmp_path: Path, index_server: Server) -> None:
    wheel = build_wheel(tmp_path / "wheels", "demo", "1.0")
    corrupt = index_server(tmp_path / "wheels", corrupt={wheel.name})
    empty = index_server(tmp_path / "empty")
    secret = empty.file_url(wheel.name).replace("http://", "http://alice:s3cret@")
    closed = index_server(tmp_path / "wheels")
    closed_url = closed.file_url(wheel.name)
    closed.close()
    w = locked(wheel, corrupt.file_url(wheel.name), secret, closed_url,
               (tmp_path / "nowhere.whl").as_uri())
    with pytest.raises(WheelDownloadError) as info:
        fetch_wheels([w], WheelCache(tmp_path / "c"), session())
    text = str(info.value)
    assert "s3cret" not in text and "alice" not in text
    assert text.startswith(f"could not download {wheel.name}: tried ")
    reasons = [(f.url, f.reason) for f in info.value.failures]
    assert reasons[0][0] == corrupt.file_url(wheel.name) and "sha256 mismatch" in reasons[0][1]
    assert reasons[1] == (secret.replace("alice:s3cret@", "***@"), "HTTP 404 Not Found")
    assert reasons[2][0] == closed_url and "connection" in reasons[2][1]
    assert reasons[3] == ((tmp_path / "nowhere.whl").as_uri(), "No such file or directory")
    for url, reason in reasons:
        assert f"{url} ({reason})" in text
    assert info.value.exit_code == 1 and info.value.hint


def test_a_wrong_size_in_the_lock_is_refused(tmp_path: Path, index_server: Server) -> None:
    wheel = build_wheel(tmp_path / "wheels", "demo", "1.0")
    server = index_server(tmp_path / "wheels")
    w = locked(wheel, server.file_url(wheel.name), size=wheel.stat().st_size - 1)
    with pytest.raises(WheelDownloadError, match="bytes the lock records"):
        fetch_wheels([w], WheelCache(tmp_path / "c"), session())


def test_file_urls_are_copied_and_hashed(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "wheels", "local", "1.0")
    w = locked(wheel, wheel.as_uri())
    [r] = fetch_wheels([w], WheelCache(tmp_path / "c"), session())
    assert r.url_used == wheel.as_uri() and r.path.read_bytes() == wheel.read_bytes()


def test_a_damaged_cache_entry_is_downloaded_again(tmp_path: Path, index_server: Server) -> None:
    wheel = build_wheel(tmp_path / "wheels", "demo", "1.0")
    server = index_server(tmp_path / "wheels")
    w = locked(wheel, server.file_url(wheel.name))
    cache = WheelCache(tmp_path / "c")
    [first] = fetch_wheels([w], cache, session())
    first.path.write_bytes(b"truncated")
    [again] = fetch_wheels([w], cache, session())
    assert not again.from_cache and sha256_file(again.path) == w.sha256


def test_progress_bar_runs(tmp_path: Path, index_server: Server,
                           capsys: pytest.CaptureFixture[str]) -> None:
    wheel = build_wheel(tmp_path / "wheels", "demo", "1.0", padding=MiB)
    server = index_server(tmp_path / "wheels")
    fetch_wheels([locked(wheel, server.file_url(wheel.name))], WheelCache(tmp_path / "c"),
                 session(), progress=True)
    assert "downloading" in capsys.readouterr().err


def _wheels_for_sharing(tmp_path: Path) -> list[Path]:
    return [build_wheel(tmp_path / "wheels", f"shared{i}", "1.0", padding=MiB // 2 if i < 4 else 0)
            for i in range(12)]


def test_two_threads_sharing_a_cache_download_each_file_once(
        tmp_path: Path, index_server: Server) -> None:
    paths = _wheels_for_sharing(tmp_path)
    server = index_server(tmp_path / "wheels")
    wheels = [locked(p, server.file_url(p.name)) for p in paths]
    results: dict[int, list[object]] = {}

    def build(n: int) -> None:
        results[n] = list(fetch_wheels(wheels, WheelCache(tmp_path / "cache"), session(), jobs=4))

    threads = [threading.Thread(target=build, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == [0, 1]
    for p in paths:
        assert len(gets(server, p.name)) == 1
    assert len(cache_entries(tmp_path / "cache")) == len(paths)


def _fetch_in_process(cache_root: str, wheels_json: str, out: str) -> None:
    wheels = [WheelFile(d["filename"], d["sha256"], d["size"], tuple(d["urls"]))
              for d in json.loads(wheels_json)]
    results = fetch_wheels(wheels, WheelCache(Path(cache_root)), requests.Session(), jobs=4)
    Path(out).write_text(json.dumps(fetch_summary(results)))


def test_two_processes_sharing_a_cache_download_each_file_once(
        tmp_path: Path, index_server: Server) -> None:
    paths = _wheels_for_sharing(tmp_path)
    server = index_server(tmp_path / "wheels")
    wheels_json = json.dumps([locked(p, server.file_url(p.name)).to_json() for p in paths])
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_fetch_in_process,
                         args=(str(tmp_path / "cache"), wheels_json, str(tmp_path / f"out{n}")))
             for n in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    summaries = [json.loads((tmp_path / f"out{n}").read_text()) for n in range(2)]
    assert sum(s["downloaded"] for s in summaries) == len(paths)
    assert all(s["files"] == len(paths) for s in summaries)
    for p in paths:
        assert len(gets(server, p.name)) == 1
    assert len(cache_entries(tmp_path / "cache")) == len(paths)


_DISK_FULL_CHILD = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import requests
    from wheelferry.cache import WheelCache
    from wheelferry.errors import FetchError
    from wheelferry.fetch import fetch_wheels
    from wheelferry.lockfile import WheelFile
    root, wheel = Path(sys.argv[1]), json.loads(sys.argv[2])
    w = WheelFile(wheel["filename"], wheel["sha256"], wheel["size"], tuple(wheel["urls"]))
    try:
        fetch_wheels([w], WheelCache(root / "cache"), requests.Session())
        out = {"error": None}
    except FetchError as exc:
        out = {"error": str(exc), "type": type(exc).__name__}
    out["left"] = sorted(str(p.relative_to(root)) for p in root.rglob("*")
                         if p.is_file() and p.parent.name != "locks")
    print(json.dumps(out))
""")


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.skipif(not _unshare_works(), reason="needs unprivileged user namespaces (unshare -rm)")
def test_disk_full_is_a_clear_error_and_leaves_nothing(
        tmp_path: Path, index_server: Server, big: Path) -> None:
    server = index_server(big.parent)
    small = tmp_path / "small"
    small.mkdir()
    w = locked(big, server.file_url(big.name))
    script = tmp_path / "child.py"
    script.write_text(_DISK_FULL_CHILD)
    src = str(Path(__file__).resolve().parents[1] / "src")
    # A private mount namespace with a 1 MiB tmpfs: the 2.5 MiB wheel cannot fit.
    cmd = ["unshare", "-rm", "sh", "-c",
           'mount -t tmpfs -o size=1m tmpfs "$1" && shift && exec "$@"', "sh",
           str(small), sys.executable, str(script), str(small), json.dumps(w.to_json())]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False,
                          env={"PYTHONPATH": src, "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["type"] == "FetchError"
    assert out["error"] == f"no space left on device while writing {big.name}"
    assert out["left"] == []


def test_fetch_summary_counts(tmp_path: Path) -> None:
    assert fetch_summary([]) == {"files": 0, "downloaded": 0, "from_cache": 0,
                                 "bytes_downloaded": 0, "bytes_from_cache": 0, "seconds": 0.0}


def test_many_failures_are_reported_together(tmp_path: Path, index_server: Server) -> None:
    server = index_server(tmp_path / "empty")
    ws: Sequence[WheelFile] = [
        WheelFile(f"gone{i}-1.0-py3-none-any.whl", f"{i:064x}", 10,
                  (server.file_url(f"gone{i}-1.0-py3-none-any.whl"),)) for i in range(2)]
    with pytest.raises(FetchError, match="could not download 2 of 2 wheels") as info:
        fetch_wheels(ws, WheelCache(tmp_path / "c"), session())
    assert "gone0" in str(info.value) and "gone1" in str(info.value)


def test_with_the_products_session_auth_and_retries(tmp_path: Path, index_server: Server) -> None:
    from wheelferry.http import make_session

    wheel = build_wheel(tmp_path / "wheels", "private", "1.0")
    server = index_server(tmp_path / "wheels", auth=("alice", "s3cret"), fail={wheel.name: 2})
    s = make_session([server.url.replace("http://", "http://alice:s3cret@")], retries=3,
                     backoff=0.01)
    events: list[FetchEvent] = []
    [r] = fetch_wheels([locked(wheel, server.file_url(wheel.name))], WheelCache(tmp_path / "c"), s,
                       on_event=events.append)
    assert r.url_used == server.file_url(wheel.name) and sha256_file(r.path) == r.wheel.sha256
    assert len(gets(server, wheel.name)) == 3 and not [e for e in events if e.kind == "retry"]


def test_server_errors_after_the_sessions_retries_fail_over(
        tmp_path: Path, index_server: Server) -> None:
    from wheelferry.http import make_session

    wheel = build_wheel(tmp_path / "wheels", "flaky", "1.0")
    down = index_server(tmp_path / "wheels", fail={wheel.name: 100})
    up = index_server(tmp_path / "wheels")
    events: list[FetchEvent] = []
    [r] = fetch_wheels([locked(wheel, down.file_url(wheel.name), up.file_url(wheel.name))],
                       WheelCache(tmp_path / "c"), make_session(retries=2, backoff=0.01),
                       on_event=events.append)
    assert len(gets(down, wheel.name)) == 3  # the session's own retries, not multiplied
    assert [e.message for e in events if e.kind == "failover"] == [
        "HTTP 500 Internal Server Error (after retries)"]
    assert r.url_used == up.file_url(wheel.name)


_SIGINT_CHILD = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    import requests
    from wheelferry.cache import WheelCache
    from wheelferry.fetch import fetch_wheels
    from wheelferry.lockfile import WheelFile
    root, wheel = Path(sys.argv[1]), json.loads(sys.argv[2])
    w = WheelFile(wheel["filename"], wheel["sha256"], wheel["size"], tuple(wheel["urls"]))

    def slow_reader(event):
        # The first piece waits until the test has sent SIGINT, so the signal lands mid-download
        # however slow the machine; the later pieces stay slow.
        if event.kind == "bytes":
            if not (root / "streaming").exists():
                (root / "streaming").touch()
                while not (root / "signalled").exists():
                    time.sleep(0.01)
            time.sleep(0.2)

    fetch_wheels([w], WheelCache(root / "cache"), requests.Session(), on_event=slow_reader)
""")


def test_sigint_mid_download_stops_and_leaves_only_a_resumable_partial(
        tmp_path: Path, index_server: Server) -> None:
    import signal
    import time

    wheel = build_wheel(tmp_path / "wheels", "huge", "1.0", padding=8 * MiB)
    server = index_server(tmp_path / "wheels")
    w = locked(wheel, server.file_url(wheel.name))
    script = tmp_path / "child.py"
    script.write_text(_SIGINT_CHILD)
    src = str(Path(__file__).resolve().parents[1] / "src")
    child = subprocess.Popen([sys.executable, str(script), str(tmp_path), json.dumps(w.to_json())],
                             env={"PYTHONPATH": src, "PATH": "/usr/bin:/bin"},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300  # a bound for a broken child: a working one streams in seconds
        while not (tmp_path / "streaming").exists() and child.poll() is None:
            assert time.monotonic() < deadline, "the child never started streaming"
            time.sleep(0.02)
        child.send_signal(signal.SIGINT)
        (tmp_path / "signalled").touch()
        _, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode != 0 and "KeyboardInterrupt" in err, err
    cache = WheelCache(tmp_path / "cache")
    assert cache.path(w.sha256) is None and cache_entries(tmp_path / "cache") == []
    assert cache.partial_path(w.sha256).exists(), err
    kept = cache.partial_path(w.sha256).stat().st_size
    assert 0 < kept < w.size  # type: ignore[operator]

    [r] = fetch_wheels([w], cache, session())
    assert gets(server, wheel.name)[-1] == f"bytes={kept}-"
    assert sha256_file(r.path) == w.sha256
