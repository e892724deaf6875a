"""Real index server software on loopback: the servers people run as internal mirrors.

* ``write_static_tree(root, wheels, ...)``: a PEP 503 tree (``simple/<project>/index.html``
  and ``files/``) with a chosen hash algorithm (or none), optional PEP 658 ``.metadata``
  files and deliberately wrong hashes, for any static file server;
* ``http_server(root)``: ``python -m http.server`` (no Range, no sizes);
* ``nginx(root)``: nginx (Range, Content-Length), when the binary exists;
* ``pypiserver(dir, hash_algo=, auth=)``: pypiserver, optionally behind basic auth;
* ``devpi(wheels)``: devpi-server with a ``root/dev`` index the wheels are uploaded to
  (JSON and HTML pages, sha256, no Range, no PEP 658);
* ``redirector(target)``: every request answered with a 302 to the same path elsewhere.

Each is started as its real program in a subprocess (the redirector: a thread) and stopped
by the context manager.  ``RequestLog`` records what the product's HTTP sessions receive.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
import requests
from packaging.utils import canonicalize_name, parse_wheel_filename

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(url: str, proc: subprocess.Popen[bytes] | None, log: Path | None,
                  timeout: float = 300.0) -> None:
    """Poll *url* until it answers (any status); fail with the server's log if it died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            text = log.read_text(errors="replace")[-2000:] if log else ""
            raise RuntimeError(f"server exited ({proc.returncode}): {text}")
        try:
            requests.get(url, timeout=10)
            return
        except (requests.ConnectionError, requests.Timeout):  # not up yet, or busy starting
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up in {timeout:.0f} s")


@contextlib.contextmanager
def running(argv: Sequence[str], probe: str, log: Path, **kw: Any) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server program until the ``with`` block ends (its output goes to *log*)."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, **kw)
    try:
        wait_until_up(probe, proc, log)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _metadata_of(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA"))
        return zf.read(name)


def write_static_tree(root: Path, wheels: Sequence[Path], *, hash_algo: str | None = "sha256",
                      pep658: bool = False, wrong: dict[str, str] | None = None) -> Path:
    """A static PEP 503 index under *root*; ``wrong={filename: algo}`` advertises a false hash."""
    files = root / "files"
    files.mkdir(parents=True, exist_ok=True)
    by_project: dict[str, list[Path]] = {}
    for w in wheels:
        shutil.copyfile(w, files / w.name)
        by_project.setdefault(str(parse_wheel_filename(w.name)[0]), []).append(w)
    links = []
    for project, ws in sorted(by_project.items()):
        links.append(f'<a href="{project}/">{project}</a>')
        lines = []
        for w in ws:
            href = f"../../files/{quote(w.name)}"
            algo = (wrong or {}).get(w.name, hash_algo)
            if algo:
                digest = hashlib.new(algo, w.read_bytes()).hexdigest()
                if w.name in (wrong or {}):
                    digest = hashlib.new(algo, b"not " + w.read_bytes()).hexdigest()
                href += f"#{algo}={digest}"
            attrs = f'href="{href}"'
            if pep658:
                meta = _metadata_of(w)
                (files / f"{w.name}.metadata").write_bytes(meta)
                attrs += f' data-core-metadata="sha256={hashlib.sha256(meta).hexdigest()}"'
            lines.append(f"<a {attrs}>{w.name}</a><br/>")
        page = root / "simple" / project / "index.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text("<!DOCTYPE html><html><body>\n" + "\n".join(lines) + "\n</body></html>\n")
    (root / "simple" / "index.html").write_text("<!DOCTYPE html><html><body>\n"
                                                + "\n".join(links) + "\n</body></html>\n")
    return root


@contextlib.contextmanager
def http_server(root: Path) -> Iterator[str]:
    """``python -m http.server`` over *root*; yields the index URL."""
    port = free_port()
    with running([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                  "--directory", str(root)], f"http://127.0.0.1:{port}/",
                 root.parent / f"{root.name}.http-server.log"):
        yield f"http://127.0.0.1:{port}/simple/"


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx")
                                          if os.access(p, os.X_OK)), None)


@contextlib.contextmanager
def nginx(root: Path) -> Iterator[str]:
    """nginx serving *root* statically (Range and Content-Length as nginx does them)."""
    binary = nginx_binary()
    if binary is None:
        pytest.skip("nginx is not installed (apt-get install nginx-light to run this set-up)")
    port = free_port()
    prefix = root.parent / f"{root.name}.nginx"
    prefix.mkdir(exist_ok=True)
    user = "user root;" if os.geteuid() == 0 else ""  # workers must read the test's 0700 tmp dirs
    temps = " ".join(f"{k}_temp_path {prefix / k};" for k in
                     ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf = prefix / "nginx.conf"
    conf.write_text(f"""{user}
daemon off; worker_processes 1; pid {prefix / 'nginx.pid'}; error_log {prefix / 'error.log'};
events {{ worker_connections 64; }}
http {{
  access_log off; {temps}
  types {{ text/html html; application/octet-stream whl; text/plain metadata; }}
  server {{ listen 127.0.0.1:{port}; root {root}; index index.html; }}
}}
""")
    with running([binary, "-p", str(prefix), "-c", str(conf)], f"http://127.0.0.1:{port}/",
                 prefix / "stdout.log"):
        yield f"http://127.0.0.1:{port}/simple/"


@contextlib.contextmanager
def pypiserver(packages: Path, *, hash_algo: str = "sha256",
               auth: tuple[str, str] | None = None) -> Iterator[str]:
    """pypiserver 2 over a directory of wheels; yields the index URL (without credentials)."""
    port = free_port()
    argv = [str(BIN / "pypi-server"), "run", "-p", str(port), "-i", "127.0.0.1",
            "--disable-fallback", "--hash-algo", hash_algo]
    if auth is not None:
        with warnings.catch_warnings():  # passlib imports the deprecated crypt module
            warnings.simplefilter("ignore", DeprecationWarning)
            from passlib.apache import HtpasswdFile

        ht = HtpasswdFile(str(packages.parent / f"{packages.name}.htpasswd"), new=True)
        ht.set_password(*auth)
        ht.save()
        argv += ["-a", "download,list,update", "-P", str(ht.path)]
    else:
        argv += ["-a", ".", "-P", "."]
    with running(argv + [str(packages)], f"http://127.0.0.1:{port}/health",
                 packages.parent / f"{packages.name}.pypiserver.log"):
        yield f"http://127.0.0.1:{port}/simple/"


@contextlib.contextmanager
def devpi(workdir: Path, wheels: Sequence[Path]) -> Iterator[str]:
    """devpi-server (no root/pypi mirror, offline) with the wheels uploaded to ``root/dev``."""
    server_dir = workdir / "devpi"
    subprocess.run([str(BIN / "devpi-init"), "--serverdir", str(server_dir), "--no-root-pypi",
                    "--root-passwd", "pw"], check=True, capture_output=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with running([str(BIN / "devpi-server"), "--serverdir", str(server_dir), "--host", "127.0.0.1",
                  "--port", str(port), "--offline-mode"], f"{base}/+api", workdir / "devpi.log"):
        login = requests.post(f"{base}/+login", json={"user": "root", "password": "pw"},
                              headers={"Accept": "application/json"}, timeout=30)
        login.raise_for_status()
        token = login.json()["result"]["password"]
        headers = {"X-Devpi-Auth": base64.b64encode(f"root:{token}".encode()).decode(),
                   "Accept": "application/json"}
        requests.put(f"{base}/root/dev", json={"bases": [], "type": "stage", "volatile": True},
                     headers=headers, timeout=30).raise_for_status()
        for w in wheels:
            name, version, _, _ = parse_wheel_filename(w.name)
            requests.post(f"{base}/root/dev/", headers=headers, timeout=30,
                          data={":action": "file_upload", "name": str(name), "version": str(version)},
                          files={"content": (w.name, w.read_bytes())}).raise_for_status()
        yield f"{base}/root/dev/+simple/"


@contextlib.contextmanager
def redirector(target_root: str) -> Iterator[str]:
    """A loopback server answering every GET with ``302 Found`` to the same path under *target_root*."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", target_root.rstrip("/") + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with serve_http(ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as url:
        yield url


@contextlib.contextmanager
def serve_http(httpd: ThreadingHTTPServer) -> Iterator[str]:
    """Serve *httpd* (bound to loopback) on a thread; yields its ``/simple/`` URL."""
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/simple/"
    finally:
        httpd.shutdown()
        httpd.server_close()


@dataclass
class RequestLog:
    """Every response the product's HTTP sessions received: (method, url, status, Range)."""

    entries: list[tuple[str, str, int, str | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def hook(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        req = response.request
        with self.lock:
            self.entries.append((req.method or "", urlsplit(req.url or "").path, response.status_code,
                                 req.headers.get("Range")))

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()

    def whole_downloads(self, filename: str) -> int:
        """GETs of *filename* answered with the whole file (200), whatever Range was asked."""
        with self.lock:
            return sum(1 for m, p, s, _ in self.entries
                       if m == "GET" and s == 200 and p.endswith("/" + filename))

    def page_reads(self) -> dict[str, int]:
        """Successful GETs per index page (any path that is not a file)."""
        out: dict[str, int] = {}
        with self.lock:
            for m, p, s, _ in self.entries:
                if m == "GET" and s == 200 and not p.endswith((".whl", ".metadata")):
                    out[p] = out.get(p, 0) + 1
        return out


@pytest.fixture
def request_log(monkeypatch: pytest.MonkeyPatch) -> RequestLog:
    """Records what every session the product makes (``http.make_session``) receives."""
    import wheelferry.http

    log = RequestLog()
    real = wheelferry.http.make_session

    def recording(*args: Any, **kwargs: Any) -> requests.Session:
        session = real(*args, **kwargs)
        session.hooks["response"].append(log.hook)
        return session

    monkeypatch.setattr(wheelferry.http, "make_session", recording)
    return log


def project_of(filename: str) -> str:
    return str(canonicalize_name(parse_wheel_filename(filename)[0]))


__all__ = ["RequestLog", "devpi", "http_server", "nginx", "pypiserver", "redirector",
           "request_log", "write_static_tree"]
