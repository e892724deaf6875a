"""The HTTP session: credentials by URL prefix, retries honouring Retry-After, redacted reasons."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
import requests

from wheelferry import __version__
from wheelferry.http import PrefixAuth, describe_failure, make_session


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
