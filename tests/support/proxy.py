"""A real forward HTTP proxy on 127.0.0.1: CONNECT tunnels and plain-HTTP forwarding.

``http_proxy(auth=("user", "pass"), hosts={"mirror.internal": ("127.0.0.1", port)})``
starts one; with *auth*, a request without the right ``Proxy-Authorization`` gets 407.
*hosts* maps names only the proxy knows (so a test proves the index was reached through
it) to loopback addresses; anything else must already be a loopback address.  ``seen``
records each (method, target) that was let through.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import select
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import urlsplit

import pytest

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authorization", "proxy-connection", "te",
               "trailer", "transfer-encoding", "upgrade"}


class HttpProxy:
    """A running loopback proxy; ``url`` is ``http://127.0.0.1:PORT``."""

    def __init__(self, auth: tuple[str, str] | None = None,
                 hosts: dict[str, tuple[str, int]] | None = None) -> None:
        self.auth = auth
        self.hosts = dict(hosts or {})
        self.seen: list[tuple[str, str]] = []
        self.refused = 0
        self.lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _ProxyHandler)
        self._httpd.daemon_threads = True
        self._httpd.proxy = self  # type: ignore[attr-defined]
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True,
                                        kwargs={"poll_interval": 0.05})
        self._thread.start()

    def address(self, host: str, port: int) -> tuple[str, int]:
        """Where a target goes: a mapped name, or a loopback address (nothing else is reached)."""
        if host in self.hosts:
            return self.hosts[host]
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise OSError(f"the test proxy reaches loopback only, not {host}")
        return host, port

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def proxy(self) -> HttpProxy:
        return self.server.proxy  # type: ignore[attr-defined,no-any-return]

    def _authorised(self) -> bool:
        if self.proxy.auth is None:
            return True
        want = "Basic " + base64.b64encode(":".join(self.proxy.auth).encode()).decode()
        if self.headers.get("Proxy-Authorization") == want:
            return True
        with self.proxy.lock:
            self.proxy.refused += 1
        self.send_response(407)
        self.send_header("Proxy-Authenticate", 'Basic realm="test proxy"')
        self.send_header("Content-Length", "0")
        self.end_headers()
        return False

    def do_CONNECT(self) -> None:
        if not self._authorised():
            return
        host, _, port = self.path.rpartition(":")
        try:
            upstream = socket.create_connection(self.proxy.address(host, int(port)), timeout=10)
        except OSError:
            self.send_error(502)
            return
        with self.proxy.lock:
            self.proxy.seen.append(("CONNECT", self.path))
        self.send_response(200, "Connection established")
        self.end_headers()
        self.close_connection = True
        _pipe(self.connection, upstream)

    def _forward(self) -> None:
        # One request at a time over a kept-alive client connection, as real proxies do; the
        # response is re-sent with its own length, so the client never races a close.
        if not self._authorised():
            return
        parts = urlsplit(self.path)
        if parts.scheme != "http" or not parts.hostname:
            self.send_error(400)
            return
        with self.proxy.lock:
            self.proxy.seen.append((self.command, self.path))
        host, port = self.proxy.address(parts.hostname, parts.port or 80)
        upstream = http.client.HTTPConnection(host, port, timeout=10)
        try:
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            upstream.request(self.command, path or "/", headers={
                k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP})
            response = upstream.getresponse()
            body = response.read()
        except OSError:
            self.send_error(502)
            return
        finally:
            upstream.close()
        self.send_response(response.status, response.reason)
        for key, value in response.getheaders():
            if key.lower() not in _HOP_BY_HOP | {"content-length", "date", "server"}:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = _forward
    do_HEAD = _forward


def _pipe(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until either side closes."""
    try:
        while True:
            ready, _, _ = select.select([a, b], [], [], 10)
            if not ready:
                return
            for s in ready:
                data = s.recv(1 << 16)
                if not data:
                    return
                (b if s is a else a).sendall(data)
    except OSError:
        return
    finally:
        with contextlib.suppress(OSError):
            b.close()


@pytest.fixture
def http_proxy() -> Iterator[Callable[..., HttpProxy]]:
    """Factory: ``http_proxy(auth=None, hosts=None)`` starts a proxy, stopped at teardown."""
    proxies: list[HttpProxy] = []

    def _start(**kw: Any) -> HttpProxy:
        proxies.append(HttpProxy(**kw))
        return proxies[-1]

    yield _start
    for p in proxies:
        p.close()


__all__ = ["HttpProxy", "http_proxy"]
