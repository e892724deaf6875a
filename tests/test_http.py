"""The HTTP session: credentials by URL prefix, retries honouring Retry-After, redacted reasons."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import requests

from tests.support.wheels import build_wheel
from wheelferry import __version__
from wheelferry import http as http_module
from wheelferry.config import NetSettings
from wheelferry.http import (
    CACHE_WRITER,
    CacheWriter,
    PageCache,
    PrefixAuth,
    describe_failure,
    freshness_lifetime,
    make_session,
    warm_tls,
)
from wheelferry.index import ACCEPT


def test_credentials_match_scheme_host_and_longest_prefix() -> None:
    auth = PrefixAuth([
        "https://team:t0k@mirror.example/team/simple",
        "https://all:pw@mirror.example/",
        "https://mirror.example/public/simple",  # no credentials: nothing to add
        "http://plain:x@mirror.example:8080/simple/",
    ])
    assert auth.lookup("https://mirror.example/team/simple/numpy/") == ("team", "t0k")
    assert auth.lookup("https://mirror.example/packages/a.whl") == ("all", "pw")
    assert auth.lookup("https://mirror.example:443/team/simple/") == ("team", "t0k")
    assert auth.lookup("http://mirror.example/simple/") is None
    assert auth.lookup("http://mirror.example:8080/files/x.whl") == ("plain", "x")
    assert auth.lookup("https://other.example/team/simple/") is None
    assert auth.lookup("https://u:p%40ss@other.example/") == ("u", "p@ss")


class _Flaky(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[tuple[str, str | None, str | None]]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("User-Agent"), self.headers.get("Authorization")))
        if len(self.seen) == 1:
            self.send_response(429)
            self.send_header("Retry-After", "0")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


@pytest.fixture
def flaky() -> Iterator[str]:
    _Flaky.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_429_is_retried_with_user_agent_and_credentials(flaky: str) -> None:
    session = make_session([flaky.replace("http://", "http://me:pw@") + "/simple"], backoff=0)
    r = session.get(flaky + "/simple/x/")
    assert r.status_code == 200 and r.text == "ok"
    assert len(_Flaky.seen) == 2
    assert all(ua == f"wheelferry/{__version__}" and a and a.startswith("Basic ")
               for _, ua, a in _Flaky.seen)


def test_connection_failures_are_described_without_credentials() -> None:
    session = make_session(retries=0)
    with pytest.raises(requests.RequestException) as info:
        session.get("http://alice:hunter2@127.0.0.1:1/simple/")
    text = describe_failure(info.value)
    assert "hunter2" not in text and "connection" in text


class _Pages(BaseHTTPRequestHandler):
    """Serves ``body`` with whatever caching headers the test sets; honours If-None-Match."""

    protocol_version = "HTTP/1.1"
    body: ClassVar[bytes] = b"{}"
    headers_out: ClassVar[dict[str, str]] = {}
    status: ClassVar[int] = 200
    seen: ClassVar[list[dict[str, str]]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.seen.append(dict(self.headers))
        etag = self.headers_out.get("ETag")
        if etag and self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            for k, v in self.headers_out.items():
                self.send_header(k, v)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(self.status)
        self.send_header("Content-Type", "application/vnd.pypi.simple.v1+json")
        for k, v in self.headers_out.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)


@pytest.fixture
def pages() -> Iterator[str]:
    _Pages.body, _Pages.headers_out, _Pages.status, _Pages.seen = b'{"a": 1}', {}, 200, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/simple/x/"
    server.shutdown()
    server.server_close()


class _Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_fresh_page_costs_no_request_and_stale_one_is_revalidated(pages: str, tmp_path: Path) -> None:
    _Pages.headers_out = {"Cache-Control": "max-age=600, public", "ETag": '"v1"'}
    clock = _Clock()
    cache, session = PageCache(tmp_path, clock), make_session()
    first = cache.fetch(session, pages, ACCEPT)
    assert first.status == 200 and first.body() == b'{"a": 1}' and not first.from_cache
    clock.now += 599
    again = cache.fetch(session, pages, ACCEPT)
    assert again.from_cache and again.body() == b'{"a": 1}' and again.digest == first.digest
    assert len(_Pages.seen) == 1
    clock.now += 2  # now older than max-age: must ask, and a 304 reuses the stored body
    revalidated = cache.fetch(session, pages, ACCEPT)
    assert len(_Pages.seen) == 2 and _Pages.seen[1]["If-None-Match"] == '"v1"'
    assert revalidated.from_cache and revalidated.body() == b'{"a": 1}'
    clock.now += 599  # the 304 restarted the lifetime
    cache.fetch(session, pages, ACCEPT)
    assert len(_Pages.seen) == 2
    clock.now += 2
    _Pages.body, _Pages.headers_out = b'{"a": 2}', {"Cache-Control": "max-age=600", "ETag": '"v2"'}
    changed = cache.fetch(session, pages, ACCEPT)
    assert changed.body() == b'{"a": 2}' and changed.digest != first.digest
    assert cache.fetch(session, pages, ACCEPT).body() == b'{"a": 2}' and len(_Pages.seen) == 3


def test_age_expires_no_cache_and_no_store() -> None:
    assert freshness_lifetime({"Cache-Control": "max-age=600", "Age": "100"}, 0) == 500
    assert freshness_lifetime({"Cache-Control": "public, max-age=60"}, 0) == 60
    assert freshness_lifetime({"Cache-Control": "no-cache, max-age=60"}, 0) == 0
    assert freshness_lifetime({"Cache-Control": "no-store"}, 0) is None
    assert freshness_lifetime({"Date": "Mon, 01 Jan 2024 00:00:00 GMT",
                               "Expires": "Mon, 01 Jan 2024 00:05:00 GMT"}, 0) == 300
    assert freshness_lifetime({"Expires": "0"}, 0) == 0
    assert freshness_lifetime({}, 0) == 0  # no explicit lifetime: never served unasked


def test_errors_and_no_store_are_not_cached_and_keys_drop_credentials(pages: str, tmp_path: Path) -> None:
    clock = _Clock()
    cache, session = PageCache(tmp_path, clock), make_session(retries=0)
    _Pages.status, _Pages.headers_out = 404, {"Cache-Control": "max-age=600"}
    assert cache.fetch(session, pages, ACCEPT).status == 404
    CACHE_WRITER.flush()  # cache files go to disk on a thread of their own: wait for it before looking
    assert not list(tmp_path.rglob("*.meta"))
    _Pages.status, _Pages.headers_out = 200, {"Cache-Control": "no-store"}
    assert cache.fetch(session, pages, ACCEPT).body() == b'{"a": 1}'
    CACHE_WRITER.flush()
    assert not list(tmp_path.rglob("*.meta"))
    _Pages.headers_out = {"Cache-Control": "max-age=600"}
    cache.fetch(session, pages.replace("http://", "http://bob:s3cret@"), ACCEPT)
    assert cache.key(pages, ACCEPT) == cache.key(pages.replace("http://", "http://bob:s3cret@"), ACCEPT)
    assert cache.key(pages, ACCEPT) != cache.key(pages, "text/html")
    assert cache.fetch(session, pages, ACCEPT).from_cache
    CACHE_WRITER.flush()
    assert list(tmp_path.rglob("*.meta"))
    for path in tmp_path.rglob("*"):
        assert not path.name.endswith(".tmp")  # no temporary file is left once the writes are done
        if path.is_file():
            assert b"s3cret" not in path.read_bytes() and b"bob" not in path.read_bytes()


def test_unchanged_page_without_validators_is_read_again(pages: str, tmp_path: Path) -> None:
    cache, session = PageCache(tmp_path, _Clock()), make_session()
    first = cache.fetch(session, pages, ACCEPT)
    second = cache.fetch(session, pages, ACCEPT)
    assert len(_Pages.seen) == 2 and "If-None-Match" not in _Pages.seen[1]
    assert first.digest == second.digest and not second.from_cache


def test_damaged_stored_body_is_not_served(pages: str, tmp_path: Path) -> None:
    _Pages.headers_out = {"Cache-Control": "max-age=600"}
    cache, session = PageCache(tmp_path, _Clock()), make_session()
    cache.fetch(session, pages, ACCEPT)
    CACHE_WRITER.flush()  # the page goes to disk on a thread of its own
    (body,) = tmp_path.rglob("*.body")
    body.write_bytes(b'{"a": 9}')
    stored = cache.fetch(session, pages, ACCEPT)
    assert stored.from_cache and stored.body() is None
    assert cache.fetch(session, pages, ACCEPT, use_cache=False).body() == b'{"a": 1}'


def test_cache_writer_serves_queued_files_and_keeps_the_last_write(tmp_path: Path, monkeypatch: Any) -> None:
    gate, real = threading.Event(), http_module.atomic_write

    def held(path: Path, data: bytes) -> None:
        assert gate.wait(120)
        real(path, data)

    monkeypatch.setattr(http_module, "atomic_write", held)
    writer, path = CacheWriter(), tmp_path / "ab" / "k.meta"
    writer.write(path, b"one")
    writer.write(path, b"two")
    assert writer.read(path) == b"two" and not path.exists()  # queued: served from memory
    gate.set()
    writer.flush()
    assert path.read_bytes() == b"two" and writer.read(path) == b"two"
    assert [p.name for p in path.parent.iterdir()] == ["k.meta"]  # no temporary left
    blocked = tmp_path / "not-a-dir"
    blocked.write_bytes(b"")
    writer.write(blocked / "k.meta", b"x")  # an unwritable cache costs the file, nothing else
    writer.flush()
    assert writer.read(blocked / "k.meta") is None


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.send_header("Connection", "close")  # every request opens a new TLS connection
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server.server_address[1], cert
    server.shutdown()
    server.server_close()


def test_tls_bundle_is_loaded_once_and_still_verifies(tls_server: tuple[int, Path], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    port, served = tls_server
    cert = tmp_path / "ca.pem"
    cert.write_bytes(served.read_bytes())
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    session = make_session(retries=0)
    assert session.get(f"https://127.0.0.1:{port}/", verify=str(cert)).content == b"ok"
    # Every request is a new TLS connection (the server closes each one); the session parsed the
    # bundle once, so a file that is no longer a bundle does not matter to it.
    cert.write_text("this is not a certificate\n")
    for _ in range(2):
        assert session.get(f"https://127.0.0.1:{port}/", verify=str(cert)).content == b"ok"
    # Still a real check: a name the certificate does not carry, and the default bundle.
    with pytest.raises(requests.exceptions.SSLError):
        session.get(f"https://localhost:{port}/", verify=str(served))
    with pytest.raises(requests.exceptions.SSLError):
        make_session(retries=0).get(f"https://127.0.0.1:{port}/")


def test_ca_bundle_is_loaded_ahead_of_the_first_request(tls_server: tuple[int, Path], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    port, served = tls_server
    monkeypatch.setattr(http_module, "_CONTEXTS", {})  # nothing loaded by earlier tests
    cert = tmp_path / "ca.pem"
    cert.write_bytes(served.read_bytes())
    session = make_session(retries=0, net=NetSettings(cert=str(cert)))
    url = f"https://127.0.0.1:{port}/"
    thread = warm_tls(session, [url, "http://127.0.0.1:9/plain"])
    assert thread is not None
    thread.join(10)
    # Loaded before any request: what the file holds now no longer matters to the session.
    cert.write_text("this is not a certificate\n")
    assert session.get(url).content == b"ok"
    assert warm_tls(session, [url]) is None  # already loaded: no second thread


def test_ca_bundle_that_does_not_load_ahead_is_reported_by_the_request(
        tls_server: tuple[int, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port, _cert = tls_server
    monkeypatch.setattr(http_module, "_CONTEXTS", {})
    bad = tmp_path / "not-pem.crt"
    bad.write_text("this is not a certificate\n")
    session = make_session(retries=0, net=NetSettings(cert=str(bad)))
    thread = warm_tls(session, [f"https://127.0.0.1:{port}/"])
    assert thread is not None
    thread.join(10)
    with pytest.raises(requests.exceptions.SSLError, match="not-pem.crt"):
        session.get(f"https://127.0.0.1:{port}/")


def test_unusable_ca_bundle_is_a_requests_error_naming_it(tls_server: tuple[int, Path], tmp_path: Path) -> None:
    port, _cert = tls_server
    bad = tmp_path / "not-pem.crt"
    bad.write_text("this is not a certificate\n")
    with pytest.raises(requests.exceptions.SSLError, match="not-pem.crt"):
        make_session(retries=0).get(f"https://127.0.0.1:{port}/", verify=str(bad))


def test_environment_proxies_are_read_once_per_host_and_still_apply(
        index_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import requests.sessions

    build_wheel(tmp_path / "w", "pkg", "1.0")
    server = index_server(tmp_path / "w")
    reads: list[str] = []
    real = requests.sessions.get_environ_proxies

    def counting(url: str, no_proxy: str | None = None) -> dict[str, str]:
        reads.append(url)
        return real(url, no_proxy=no_proxy)

    monkeypatch.setattr(requests.sessions, "get_environ_proxies", counting)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("NO_PROXY", "localhost")
    session = make_session(retries=0)
    for _ in range(3):  # 127.0.0.1 is not exempt: every request goes to the proxy, and fails
        with pytest.raises(requests.exceptions.ProxyError):
            session.get(f"{server.url}/pkg/")
    for _ in range(3):
        assert session.get(f"{server.url.replace('127.0.0.1', 'localhost')}/pkg/").ok  # exempt
    assert len(reads) == 2  # once for each host, not once per request
    assert server.count("GET", "/simple/pkg/") == 3
