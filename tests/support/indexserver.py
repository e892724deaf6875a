"""A real threaded PEP 503/691/658 "simple" index on 127.0.0.1, with switches for faults.

``index_server(wheel_dir, **switches)`` (fixture factory) and ``serve_index(...)``
(context manager, for benchmarks) serve every wheel (and sdist) in *wheel_dir*:

* ``/simple/``             project list; ``/simple/<project>/`` project page
* ``/files/<filename>``    the file; ``/files/<filename>.metadata`` its METADATA (PEP 658)

Switches, also settable as attributes while the server runs:

``mode``            "json" | "html" | "both" (PEP 691 content negotiation on Accept)
``pep658``          serve and advertise ``.metadata`` files with their sha256
``range``           honour ``Range: bytes=`` (206) for files; False sends 200 with the whole file
``fail``            {path_or_filename: n}: the first n matching requests get a 500
``slow``            seconds to sleep before every response
``together``        n: hold every response until n requests wait at once (set at start only;
                    a group that does not fill within 10 s is let through)
``drop_after``      {filename: nbytes}: the first request closes after nbytes of body
``corrupt``         {filename}: different bytes, same length
``html_200``        {filename}: an HTML error page with status 200 instead of the file
``yanked``          {filename: reason} (PEP 592)
``requires_python`` {filename: spec} (PEP 503 data-requires-python, html-escaped)
``auth``            ("user", "pass"): basic auth required everywhere, 401 otherwise
``hide_size``       no ``size`` in JSON and no Content-Length on whole-file responses
``tls``             an ``ssl.SSLContext`` (server side): serve HTTPS with it (set at start only)
``bind``            the address to listen on (set at start only; default 127.0.0.1)
``name``            the host name its URLs use (set at start only; default the bind address),
                    e.g. a name only a test proxy resolves
``max_age``         seconds: project pages say ``Cache-Control: max-age=N, public`` (as public
                    indexes do); None sends no caching headers at all
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import html
import json
import re
import socket
import stat
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote, unquote, urlsplit

import pytest
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
_SWITCHES = {
    "mode": "json", "pep658": True, "range": True, "fail": None, "slow": 0.0, "together": None,
    "drop_after": None, "corrupt": None, "html_200": None, "yanked": None,
    "requires_python": None, "auth": None, "hide_size": False, "max_age": None, "tls": None,
    "bind": "127.0.0.1", "name": None,
}
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass(frozen=True)
class _File:
    filename: str
    project: str
    version: str
    path: Path
    sha256: str
    size: int
    mtime: float


@functools.cache
def _project_of(filename: str) -> tuple[str, str] | None:
    try:
        if filename.endswith(".whl"):
            name, version, _, _ = parse_wheel_filename(filename)
        elif filename.endswith((".tar.gz", ".zip")):
            name, version = parse_sdist_filename(filename)
        else:
            return None
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None
    return str(name), str(version)


def _wheel_metadata(path: Path) -> bytes:
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            parts = name.split("/")
            if len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] == "METADATA":
                return zf.read(name)
    raise FileNotFoundError(f"no METADATA in {path.name}")


def _accepts_json(accept: str) -> bool:
    """PEP 691: pick the highest-q type we serve; ties go to the first listed."""
    best: tuple[float, int, str] | None = None
    for i, item in enumerate(accept.split(",")):
        parts = [p.strip() for p in item.split(";")]
        q = 1.0
        for p in parts[1:]:
            if p.startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
        served = parts[0] in (JSON_V1, HTML_V1, "text/html", "*/*",
                              "application/vnd.pypi.simple.latest+json",
                              "application/vnd.pypi.simple.latest+html")
        if served and q > 0 and (best is None or q > best[0]):
            best = (q, i, parts[0])
    return best is not None and best[2].endswith("+json")


class IndexServer:
    """A running loopback index; see the module docstring for its switches."""

    def __init__(self, wheel_dir: Path, **switches: Any) -> None:
        unknown = set(switches) - set(_SWITCHES)
        if unknown:
            raise TypeError(f"unknown index_server switches: {sorted(unknown)}")
        self.wheel_dir = Path(wheel_dir)
        for key, default in _SWITCHES.items():
            value = switches.get(key, default)
            if isinstance(value, (dict, set, list)):
                value = type(value)(value)
            setattr(self, key, value)
        if self.mode not in ("json", "html", "both"):
            raise ValueError(f"mode must be json, html or both, not {self.mode!r}")
        self.requests: list[tuple[str, str, str | None]] = []
        self.lock = threading.Lock()
        self._hash_cache: dict[tuple[str, str, int, int], str] = {}
        self._conns: set[socket.socket] = set()
        self.connections = 0  # TCP connections accepted so far
        self._together = threading.Barrier(self.together) if self.together else None
        self._httpd = _Server((self.bind, 0), _Handler)
        self._httpd.index = self
        self.port = self._httpd.server_address[1]
        if self.tls is not None:
            self._httpd.socket = self.tls.wrap_socket(self._httpd.socket, server_side=True)
        self.root = f"{'https' if self.tls is not None else 'http'}://{self.name or self.bind}:{self.port}"
        self.url = f"{self.root}/simple"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True,
                                        kwargs={"poll_interval": 0.05})
        self._thread.start()

    def file_url(self, filename: str) -> str:
        """The absolute URL this server serves *filename* at."""
        return f"{self.root}/files/{quote(filename)}"

    def count(self, method: str | None = None, suffix: str = "") -> int:
        """How many requests were received (optionally of one method, for paths ending *suffix*)."""
        with self.lock:
            return sum(1 for m, p, _ in self.requests
                       if (method is None or m == method) and p.endswith(suffix))

    def close(self) -> None:
        """Stop serving and close every open connection."""
        self._httpd.shutdown()
        with self.lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> IndexServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- data -------------------------------------------------------------

    def files(self, project: str | None = None, filename: str | None = None) -> list[_File]:
        """The servable files in wheel_dir (of one *project*, or the one *filename*), read afresh
        (tests add and rewrite wheels while it runs); only the files asked for are looked at."""
        if filename is not None:
            paths = [self.wheel_dir / filename] if "/" not in filename else []
        else:
            paths = sorted(self.wheel_dir.iterdir()) if self.wheel_dir.is_dir() else []
        out = []
        for path in paths:
            parsed = _project_of(path.name)
            if parsed is None or (project is not None and parsed[0] != project):
                continue
            try:
                st = path.stat()
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            digest = self._cached("sha256", path, st, lambda p: hashlib.sha256(p.read_bytes()).hexdigest())
            out.append(_File(path.name, parsed[0], parsed[1], path, digest, st.st_size, st.st_mtime))
        return out

    def metadata_sha256(self, f: _File) -> str:
        """The sha256 of the wheel's METADATA (PEP 658), computed once per version of the file."""
        return self._cached("metadata", f.path, f.path.stat(),
                            lambda p: hashlib.sha256(_wheel_metadata(p)).hexdigest())

    def _cached(self, kind: str, path: Path, st: Any, compute: Callable[[Path], str]) -> str:
        key = (kind, str(path), st.st_mtime_ns, st.st_size)
        with self.lock:
            value = self._hash_cache.get(key)
        if value is None:
            value = compute(path)
            with self.lock:
                self._hash_cache[key] = value
        return value

    def take_fault(self, table_name: str, keys: tuple[str, ...]) -> Any:
        """Consume one use of a counted fault (fail) or a one-shot fault (drop_after)."""
        with self.lock:
            table = getattr(self, table_name)
            if not table:
                return None
            for key in keys:
                if key in table:
                    if table_name == "fail":
                        if table[key] <= 0:
                            return None
                        table[key] -= 1
                        return True
                    return table.pop(key)
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # many parallel clients at once (the default of 5 stalls them)
    index: IndexServer

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.index.lock:
            self.index._conns.add(request)
            self.index.connections += 1
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.index.lock:
            self.index._conns.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (its timeout, a dropped connection) is part of the test, not noise.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # keep-alive replies would otherwise wait ~40 ms for the ACK
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    # -- plumbing ----------------------------------------------------------

    def _send(self, status: int, body: bytes, ctype: str, head: bool,
              headers: dict[str, str] | None = None, length: bool = True) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if length:
            self.send_header("Content-Length", str(len(body)))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _serve(self, head: bool) -> None:
        idx = self.server.index
        path = unquote(urlsplit(self.path).path)
        with idx.lock:
            idx.requests.append((self.command, path, self.headers.get("Range")))
        if idx.slow:
            time.sleep(idx.slow)
        if idx._together is not None:
            with contextlib.suppress(threading.BrokenBarrierError):
                idx._together.wait(timeout=120)
        if idx.auth is not None:
            expected = "Basic " + base64.b64encode(":".join(idx.auth).encode()).decode()
            if self.headers.get("Authorization") != expected:
                self._send(401, b"unauthorised\n", "text/plain", head,
                           {"WWW-Authenticate": 'Basic realm="index"'})
                return
        name = path.rstrip("/").rsplit("/", 1)[-1]
        if idx.take_fault("fail", (path, path.rstrip("/"), path.rstrip("/") + "/", name)):
            self._send(500, b"injected failure\n", "text/plain", head)
            return
        if path.rstrip("/") == "/simple":
            self._root_page(head)
        elif path.startswith("/simple/"):
            self._project_page(canonicalize_name(path[len("/simple/"):].strip("/")), head)
        elif path.startswith("/files/"):
            self._file(path[len("/files/"):], head)
        else:
            self._send(404, b"not found\n", "text/plain", head)

    def _wants_json(self) -> bool:
        mode = self.server.index.mode
        if mode == "both":
            return _accepts_json(self.headers.get("Accept", ""))
        return mode == "json"

    def _root_page(self, head: bool) -> None:
        projects = sorted({f.project for f in self.server.index.files()})
        if self._wants_json():
            doc = {"meta": {"api-version": "1.1"}, "projects": [{"name": p} for p in projects]}
            self._send(200, json.dumps(doc).encode(), JSON_V1, head)
            return
        links = "".join(f'<a href="{p}/">{p}</a>\n' for p in projects)
        body = f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n".encode()
        self._send(200, body, "text/html", head)

    def _project_page(self, project: str, head: bool) -> None:
        idx = self.server.index
        files = idx.files(project=project)
        if not files:
            self._send(404, b"no such project\n", "text/plain", head)
            return
        yanked = idx.yanked or {}
        rp = idx.requires_python or {}
        meta_hashes = {}
        if idx.pep658:
            for f in files:
                if f.filename.endswith(".whl"):
                    meta_hashes[f.filename] = idx.metadata_sha256(f)
        if self._wants_json():
            entries = []
            for f in files:
                e: dict[str, Any] = {
                    "filename": f.filename, "url": idx.file_url(f.filename),
                    "hashes": {"sha256": f.sha256},
                    "upload-time": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(f.mtime)),
                }
                if not idx.hide_size:
                    e["size"] = f.size
                if f.filename in rp:
                    e["requires-python"] = rp[f.filename]
                if f.filename in yanked:
                    e["yanked"] = yanked[f.filename] or True
                if f.filename in meta_hashes:
                    e["core-metadata"] = {"sha256": meta_hashes[f.filename]}
                    e["dist-info-metadata"] = {"sha256": meta_hashes[f.filename]}
                entries.append(e)
            versions = sorted({f.version for f in files})
            doc = {"meta": {"api-version": "1.1"}, "name": project, "versions": versions,
                   "files": entries}
            self._send(200, json.dumps(doc).encode(), JSON_V1, head, self._caching())
            return
        lines = []
        for f in files:
            attrs = [f'href="../../files/{quote(f.filename)}#sha256={f.sha256}"']
            if f.filename in rp:
                attrs.append(f'data-requires-python="{html.escape(rp[f.filename])}"')
            if f.filename in yanked:
                attrs.append(f'data-yanked="{html.escape(yanked[f.filename] or "")}"')
            if f.filename in meta_hashes:
                attrs.append(f'data-dist-info-metadata="sha256={meta_hashes[f.filename]}"')
                attrs.append(f'data-core-metadata="sha256={meta_hashes[f.filename]}"')
            lines.append(f'<a {" ".join(attrs)}>{html.escape(f.filename)}</a><br/>')
        body = ("<!DOCTYPE html>\n<html><head><meta name=\"pypi:repository-version\" "
                f"content=\"1.1\"><title>Links for {project}</title></head><body>\n"
                f"<h1>Links for {project}</h1>\n" + "\n".join(lines) + "\n</body></html>\n")
        self._send(200, body.encode(), "text/html", head, self._caching())

    def _caching(self) -> dict[str, str]:
        age = self.server.index.max_age
        return {} if age is None else {"Cache-Control": f"max-age={age}, public"}

    def _file(self, filename: str, head: bool) -> None:
        idx = self.server.index
        is_meta = filename.endswith(".metadata")
        base = filename[: -len(".metadata")] if is_meta else filename
        match = idx.files(filename=base)
        if not match or (is_meta and (not idx.pep658 or not base.endswith(".whl"))):
            self._send(404, b"not found\n", "text/plain", head)
            return
        if filename in (idx.html_200 or ()):
            page = b"<html><body><h1>Service temporarily unavailable</h1></body></html>\n"
            self._send(200, page, "text/html", head)
            return
        data = _wheel_metadata(match[0].path) if is_meta else match[0].path.read_bytes()
        if filename in (idx.corrupt or ()):
            data = bytes(b ^ 0x5A for b in data)
        status, headers, body = 200, {}, data
        if idx.range and not is_meta:
            headers["Accept-Ranges"] = "bytes"
            rng = self.headers.get("Range")
            if rng:
                m = _RANGE.match(rng.strip())
                start: int | None = None
                end = len(data) - 1
                if m and m.group(1):
                    start = int(m.group(1))
                    if m.group(2):
                        end = min(int(m.group(2)), len(data) - 1)
                elif m and m.group(2):
                    start = max(0, len(data) - int(m.group(2)))
                if start is None or start >= len(data) or start > end:
                    self._send(416, b"", "text/plain", head,
                               {"Content-Range": f"bytes */{len(data)}"})
                    return
                status, body = 206, data[start:end + 1]
                headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        ctype = "text/plain" if is_meta else "application/octet-stream"
        drop = None if head else idx.take_fault("drop_after", (filename,))
        if drop is not None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body[:drop])
            self.wfile.flush()
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        hide = bool(idx.hide_size) and status == 200
        self._send(status, body, ctype, head, headers, length=not hide)


@contextlib.contextmanager
def serve_index(wheel_dir: Path | str, **switches: Any) -> Iterator[IndexServer]:
    """Serve *wheel_dir* as a loopback index for the duration of the ``with`` block."""
    server = IndexServer(Path(wheel_dir), **switches)
    try:
        yield server
    finally:
        server.close()


@contextlib.contextmanager
def serve_index_process(wheel_dir: Path | str, **switches: Any) -> Iterator[str]:
    """Like ``serve_index`` (JSON-able switches only), but in a process of its own, so a big
    replay does not share the interpreter lock with the client under test; yields the URL."""
    import subprocess

    root = str(Path(__file__).resolve().parents[2])
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.indexserver", str(wheel_dir)],
                            cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(json.dumps(switches) + "\n")
        proc.stdin.flush()
        url = proc.stdout.readline().strip()
        if not url.startswith("http://"):
            raise RuntimeError(f"the index server process did not start (exit {proc.poll()})")
        yield url
    finally:
        proc.stdin.close()  # the server stops when its stdin ends
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
            proc.wait()


@pytest.fixture
def index_server() -> Iterator[Callable[..., IndexServer]]:
    """Factory: ``index_server(wheel_dir, **switches)`` starts a server, stopped at teardown."""
    servers: list[IndexServer] = []

    def _start(wheel_dir: Path | str, **switches: Any) -> IndexServer:
        server = IndexServer(Path(wheel_dir), **switches)
        servers.append(server)
        return server

    yield _start
    for server in servers:
        server.close()


__all__ = ["HTML_V1", "JSON_V1", "IndexServer", "index_server", "serve_index", "serve_index_process"]


if __name__ == "__main__":  # serve_index_process: switches as one JSON line on stdin
    with serve_index(sys.argv[1], **json.loads(sys.stdin.readline())) as _server:
        print(_server.url, flush=True)
        sys.stdin.read()
