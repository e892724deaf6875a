"""The HTTP session: retries with backoff, default timeouts, credentials added by URL prefix."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import ssl
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import SplitResult, unquote, urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import DEFAULT_CA_BUNDLE_PATH
from urllib3.util.retry import Retry
from urllib3.util.ssl_ import create_urllib3_context

from wheelferry import __version__
from wheelferry.config import NetSettings
from wheelferry.files import atomic_write
from wheelferry.jsontypes import JSONObject
from wheelferry.urls import redact_text, redact_url, strip_credentials

if TYPE_CHECKING:
    from requests.sessions import _Settings

# (connect, read) seconds; a read timeout is per socket read, not for a whole download.
DEFAULT_TIMEOUT = (15.0, 60.0)
USER_AGENT = f"wheelferry/{__version__}"
RETRY_STATUSES = (429, 500, 502, 503, 504)

# Network reads: small enough that a chunk stays in the CPU's cache from decryption through
# hashing to the write, large enough that urllib3's cost per read() call stays small (the
# fetch stage of benchmarks/run measures a download's throughput).
NET_CHUNK = 512 << 10


@dataclass(frozen=True)
class _Credential:
    scheme: str
    netloc: str
    path: str
    username: str
    password: str


def _netloc(parts: SplitResult) -> str:
    host = (parts.hostname or "").lower()
    port = parts.port
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return host if port is None or port == default else f"{host}:{port}"


class PrefixAuth(requests.auth.AuthBase):
    """Basic auth from configured URLs, matched on scheme, host and the longest path prefix.

    Locks and pages keep credential-free URLs; this puts the credentials back on
    any request to the same place.  A request to the same host outside every
    configured path (e.g. ``/files/`` beside ``/simple/``) uses that host's
    credentials, as pip does.
    """

    def __init__(self, credential_urls: Sequence[str]) -> None:
        self._creds: list[_Credential] = []
        for url in credential_urls:
            parts = urlsplit(url)
            if parts.username is None:
                continue
            self._creds.append(_Credential(parts.scheme.lower(), _netloc(parts),
                                           parts.path.rstrip("/") + "/",
                                           unquote(parts.username), unquote(parts.password or "")))
        self._creds.sort(key=lambda c: len(c.path), reverse=True)

    def lookup(self, url: str) -> tuple[str, str] | None:
        """The (user, password) to use for *url*, or None."""
        parts = urlsplit(url)
        if parts.username is not None:
            return unquote(parts.username), unquote(parts.password or "")
        scheme, netloc = parts.scheme.lower(), _netloc(parts)
        same_host = [c for c in self._creds if c.scheme == scheme and c.netloc == netloc]
        for c in same_host:
            if (parts.path.rstrip("/") + "/").startswith(c.path):
                return c.username, c.password
        return (same_host[0].username, same_host[0].password) if same_host else None

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        url = r.url or ""
        found = self.lookup(url)
        if found is not None and "Authorization" not in r.headers:
            r.prepare_url(strip_credentials(url), None)
            r.headers["Authorization"] = requests.auth._basic_auth_str(*found)
        return r


_CONTEXTS: dict[str, ssl.SSLContext] = {}
_CONTEXTS_LOCK = threading.Lock()


def _ca_bundle(verify: bool | str | None) -> str | None:
    """The CA bundle file a requests ``verify`` value stands for (None: a directory, or no check)."""
    if verify is True:
        return str(DEFAULT_CA_BUNDLE_PATH)
    if isinstance(verify, str) and os.path.isfile(verify):
        return verify
    return None


def tls_context(bundle: str) -> ssl.SSLContext:
    """One verifying TLS context per CA bundle, shared by every connection.

    requests hands the bundle's path to each new connection, which parses the
    whole bundle again (about 40 ms of CPU, more than the handshake itself); a
    lock opens a dozen connections at once.
    """
    with _CONTEXTS_LOCK:
        context = _CONTEXTS.get(bundle)
        if context is None:
            context = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
            try:
                context.load_verify_locations(cafile=bundle)
            except (ssl.SSLError, OSError) as exc:
                # As a requests error, so callers name the index or mirror as for any TLS failure.
                raise requests.exceptions.SSLError(
                    f"cannot use the CA bundle {bundle}: {getattr(exc, 'strerror', None) or exc}") from None
            _CONTEXTS[bundle] = context
    return context


def warm_tls(session: Session, urls: Sequence[str]) -> threading.Thread | None:
    """Load the CA bundles *session* will verify *urls* with, on a thread of its own.

    Parsing a bundle is the costliest step of the first HTTPS request and holds no
    lock on the interpreter: started when the session is made, it is done while the
    command still loads its modules.  A bundle that does not load is left for the
    first request to report.
    """
    bundles = set()
    for url in urls:
        if url.lower().startswith("https:") and not session.cert:
            path = _ca_bundle(session.ca_bundle(url)[0])
            if path is not None and path not in _CONTEXTS:
                bundles.add(path)
    if not bundles:
        return None

    def load() -> None:
        for path in sorted(bundles):
            with contextlib.suppress(requests.RequestException):
                tls_context(path)

    thread = threading.Thread(target=load, name="wheelferry-tls", daemon=True)
    thread.start()
    return thread


class _TimeoutAdapter(HTTPAdapter):
    """An adapter that applies DEFAULT_TIMEOUT when the caller gives none and shares TLS contexts."""

    def build_connection_pool_key_attributes(self, request: requests.PreparedRequest, verify: Any,  # Any: requests' own
                                             cert: Any = None) -> Any:  # Any: requests' own
        host, pool = super().build_connection_pool_key_attributes(request, verify, cert)
        bundle = _ca_bundle(verify)
        # With a client certificate the context would carry it to every host: not shared then.
        if bundle is not None and host.get("scheme") == "https" and not cert:
            pool.pop("ca_certs", None)
            pool["ssl_context"] = tls_context(bundle)
        return host, pool

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:  # Any: requests' own
        super().cert_verify(conn, url, verify, cert)  # type: ignore[no-untyped-call]
        if _ca_bundle(verify) is not None and url.lower().startswith("https") and not cert:
            conn.ca_certs = None  # the pool's shared context already trusts this bundle

    def send(self, request: requests.PreparedRequest, stream: bool = False,
             timeout: Any = None, verify: Any = True, cert: Any = None,  # Any: requests' own
             proxies: Any = None) -> requests.Response:  # Any: requests' own
        return super().send(request, stream=stream,
                            timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
                            verify=verify, cert=cert, proxies=proxies)


class _InsecureAdapter(_TimeoutAdapter):
    """For a trusted host (pip's ``trusted-host``): HTTPS without certificate verification."""

    def build_connection_pool_key_attributes(self, request: requests.PreparedRequest, verify: Any,  # Any: requests' own
                                             cert: Any = None) -> Any:  # Any: requests' own
        return super().build_connection_pool_key_attributes(request, False, cert)

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:  # Any: requests' own
        super().cert_verify(conn, url, False, cert)


class Session(requests.Session):
    """A session applying pip's network settings to every request, and naming them in failures.

    pip's ``cert`` outranks ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` (requests would let the
    variable win); a ``proxy`` setting means the environment's proxies are not read, as in pip.
    """

    net: NetSettings
    forced_timeout: tuple[float, float] | None = None
    def merge_environment_settings(self, url: str | bytes | None, proxies: Any, stream: Any,  # Any: requests' own
                                   verify: Any, cert: Any) -> _Settings:  # Any: requests' own
        """requests' merge of the environment's proxies and CA bundle, read once per scheme and host.

        requests scans every variable of the environment twice per request for proxies; the
        answer depends on the scheme and host alone (and on the arguments, part of the key),
        and a lock makes a thousand requests to two hosts.
        """
        if not self.trust_env or not isinstance(url, str):
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc, tuple(sorted((proxies or {}).items())), stream,
               verify, cert if not isinstance(cert, list) else tuple(cert))
        cache: dict[tuple[Any, ...], _Settings] = self.__dict__.setdefault("_env_settings", {})  # Any: as above
        found = cache.get(key)
        if found is None:
            found = cache[key] = super().merge_environment_settings(url, proxies, stream, verify, cert)
        return {**found, "proxies": dict(found["proxies"])}

    def request(self, method: str | bytes, url: str | bytes, *args: Any,  # Any: requests.Session.request's
                **kwargs: Any) -> requests.Response:  # Any: requests.Session.request's
        if self.net.cert:
            kwargs.setdefault("verify", self.net.cert)
        if self.forced_timeout is not None:
            kwargs["timeout"] = self.forced_timeout
        kwargs.setdefault("proxies", self.proxies)
        try:
            return super().request(method, url, *args, **kwargs)
        except requests.exceptions.ProxyError as exc:
            raise ExplainedProxyError(self._proxy_failure(str(url), exc)) from None
        except requests.ConnectionError as exc:
            reason = self._tls_failure(str(url), exc, kwargs.get("verify"))
            if reason is None:
                raise
            raise ExplainedSSLError(reason) from None

    def ca_bundle(self, url: str) -> tuple[str | None, str]:
        """(CA bundle file or None when not verified, where that choice came from) for *url*."""
        if self.get_adapter(url).__class__ is _InsecureAdapter:
            return None, "trusted-host: not verified"
        if self.net.cert:
            return self.net.cert, self.net.source("cert") or "cert"
        if self.trust_env:
            for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
                if os.environ.get(var):
                    return os.environ[var], var
        return str(DEFAULT_CA_BUNDLE_PATH), "the default bundle"

    def proxy_for(self, url: str) -> tuple[str | None, str]:
        """(proxy URL or None, where it came from) for *url*."""
        if self.net.proxy is not None:
            return self.net.proxy or None, self.net.source("proxy") or "proxy"
        if not self.trust_env:
            return None, "none"
        env = requests.utils.get_environ_proxies(url)
        found = requests.utils.select_proxy(url, env)
        if found:
            return found, f"{urlsplit(url).scheme.upper()}_PROXY"
        return None, "none (NO_PROXY)" if os.environ.get("NO_PROXY") or os.environ.get("no_proxy") \
            else "none"

    def describe(self, url: str) -> str:
        """One credential-free line: which CA bundle, client certificate and proxy *url*'s host gets."""
        parts = urlsplit(url)
        bundle, bundle_from = self.ca_bundle(url)
        proxy, proxy_from = self.proxy_for(url)
        line = f"{parts.scheme}://{_netloc(parts)}:"
        if parts.scheme == "https":
            line += f" CA bundle {bundle} ({bundle_from})," if bundle else f" {bundle_from},"
            cert = self.net.client_cert
            line += f" client certificate {cert} ({self.net.source('client_cert')})," if cert \
                else " no client certificate,"
        line += f" proxy {redact_url(proxy)} ({proxy_from})" if proxy else " no proxy"
        return line

    def _proxy_failure(self, url: str, exc: BaseException) -> str:
        proxy, where_from = self.proxy_for(url)
        shown = redact_url(proxy) if proxy else "the proxy"
        if "407" in str(exc):
            return (f"the proxy {shown} ({where_from}) wants credentials (HTTP 407 Proxy "
                    "Authentication Required): give them in the proxy URL, "
                    "http://USER:PASSWORD@HOST:PORT, in pip's `proxy` setting or --proxy")
        text = str(exc)
        why = next((m.lower() for m in ("Connection refused", "timed out", "Name or service not known",
                                        "Tunnel connection failed") if m in text), "connection failed")
        return (f"could not go through the proxy {shown} ({where_from}): {why}; check pip's "
                "`proxy` setting, --proxy or HTTPS_PROXY/NO_PROXY")

    def _tls_failure(self, url: str, exc: BaseException, verify: bool | str | None) -> str | None:
        text = str(exc)
        host = _netloc(urlsplit(url))
        hint = ("give the CA that signed the server's certificate with `cert` in pip's "
                "configuration, PIP_CERT or --cert")
        if "cannot use the CA bundle" in text:
            return f"TLS failure with {host}: {text}; {hint}"
        if "certificate verify failed" in text:
            bundle, where_from = self.ca_bundle(url)
            if isinstance(verify, str) and verify != self.net.cert:
                bundle, where_from = verify, "given by the caller"
            why = "certificate verify failed"
            for detail in ("self-signed certificate in certificate chain", "self-signed certificate",
                           "unable to get local issuer certificate", "certificate has expired",
                           "Hostname mismatch", "IP address mismatch"):
                if detail in text:
                    why += f" ({detail})"
                    break
            return (f"TLS failure with {host}: {why}, checked against the CA bundle {bundle} "
                    f"({where_from}); {hint}")
        tls_closed = url.lower().startswith("https") and any(
            m in text for m in ("EOF occurred in violation of protocol", "Connection reset by peer",
                                "UNEXPECTED_EOF"))
        if "certificate required" in text or "CERTIFICATE_REQUIRED" in text or tls_closed or \
                ("alert" in text and "SSL" in text):
            cert = self.net.client_cert
            have = f"the client certificate {cert} ({self.net.source('client_cert')}) was refused" \
                if cert else "no client certificate was given"
            return (f"TLS failure with {host}: the server refused the handshake and {have}; give a "
                    "PEM file holding the key and certificate with `client-cert` in pip's "
                    "configuration, PIP_CLIENT_CERT or --client-cert")
        return None


class ExplainedSSLError(requests.exceptions.SSLError):
    """A TLS failure whose message names the setting to change."""

    explained = True


class ExplainedProxyError(requests.exceptions.ProxyError):
    """A proxy failure whose message names the proxy and the setting to change."""

    explained = True


def make_session(credential_urls: Sequence[str] = (), *, net: NetSettings | None = None,
                 retries: int = 5, backoff: float = 0.2, pool: int = 16) -> Session:
    """A session that retries connects, reads, 5xx and 429 (honouring Retry-After).

    *net* carries pip's cert, client-cert, proxy, trusted-host, timeout and retries.
    """
    net = net or NetSettings()
    if net.retries is not None:
        retries = net.retries
    retry = Retry(
        total=retries, connect=retries, read=retries, status=retries, other=0,
        backoff_factor=backoff, status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET", "HEAD"}), respect_retry_after_header=True,
        raise_on_status=False, raise_on_redirect=False,
    )
    session = Session()
    session.net = net
    adapter = _TimeoutAdapter(max_retries=retry, pool_connections=pool, pool_maxsize=pool)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    insecure = _InsecureAdapter(max_retries=retry, pool_connections=pool, pool_maxsize=pool)
    for host in net.trusted_hosts:
        # As pip mounts it: host, and with no port given, the host on any port.
        for scheme in ("http", "https"):
            session.mount(f"{scheme}://{host}/", insecure)
            if ":" not in host.rsplit("]", 1)[-1]:
                session.mount(f"{scheme}://{host}:", insecure)
    if net.client_cert:
        session.cert = net.client_cert
    if net.timeout is not None:
        session.forced_timeout = (net.timeout, net.timeout)
    if net.proxy is not None:
        session.trust_env = False
        if net.proxy:
            session.proxies = {"http": net.proxy, "https": net.proxy}
    session.headers["User-Agent"] = USER_AGENT
    session.auth = PrefixAuth(credential_urls)
    return session


def describe_failure(exc: BaseException) -> str:
    """A one-line, credential-free reason for a requests failure."""
    if getattr(exc, "explained", False):
        return redact_text(str(exc))
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return http_status_text(exc.response)
    if isinstance(exc, requests.exceptions.RetryError):
        return "too many failed attempts (server errors)"
    if isinstance(exc, requests.ConnectionError):
        text = str(exc.args[0] if exc.args else exc)
        for marker in ("Connection refused", "Name or service not known", "timed out",
                       "Temporary failure in name resolution", "No route to host",
                       "Connection reset", "certificate verify failed"):
            if marker in text:
                return f"connection failed: {marker.lower()}"
        return "connection failed"
    if isinstance(exc, requests.Timeout):
        return "timed out"
    return redact_text(f"{type(exc).__name__}: {exc}").splitlines()[0][:300]


def http_status_text(response: requests.Response) -> str:
    """``HTTP 503 Service Unavailable`` for a response, with retries mentioned when they happened."""
    reason = f"HTTP {response.status_code} {response.reason or ''}".strip()
    if response.status_code in RETRY_STATUSES:
        reason += " (after retries)"
    if response.status_code == 401:
        reason += " (credentials missing or refused)"
    if response.status_code == 407:
        reason += (" (the proxy wants credentials: give them in the proxy URL, "
                   "http://USER:PASSWORD@HOST:PORT, in pip's `proxy` setting or --proxy)")
    return reason


# -- a private HTTP cache for index pages (RFC 9111) ------------------------

_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?", re.IGNORECASE)
_CACHE_FORMAT = 1


def _directives(cache_control: str) -> set[str]:
    return {d.split("=", 1)[0].strip().lower() for d in cache_control.split(",") if d.strip()}


def freshness_lifetime(headers: Mapping[str, str], received: float) -> float | None:
    """Seconds a 200 response stays fresh (RFC 9111 4.2.1), 0 for must-revalidate, None for no-store."""
    cc = headers.get("Cache-Control", "")
    directives = _directives(cc)
    if "no-store" in directives:
        return None
    if "no-cache" in directives:
        return 0.0
    age = _int(headers.get("Age")) or 0
    match = _MAX_AGE.search(cc)
    if match:
        return max(0.0, int(match[1]) - age)
    expires, date = _http_date(headers.get("Expires")), _http_date(headers.get("Date"))
    if expires is not None:
        # RFC 9111 4.2.1: Expires minus Date; an invalid Expires means already stale.
        return max(0.0, expires - (date if date is not None else received) - age)
    # No explicit lifetime: no heuristic freshness, the page is revalidated (or re-read) each time.
    return 0.0


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _http_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


@dataclass(frozen=True)
class Page:
    """An index page: final URL, status, type and body, from the network or the page cache."""

    url: str
    status: int
    content_type: str = ""
    digest: str = ""
    reason: str = ""
    from_cache: bool = False
    content: bytes | None = None
    body_path: Path | None = None

    def body(self) -> bytes | None:
        """The page bytes; None when a stored body no longer matches its record."""
        if self.content is not None:
            return self.content
        if self.body_path is None:
            return None
        data = CACHE_WRITER.read(self.body_path)
        if data is None:
            return None
        return data if hashlib.sha256(data).hexdigest() == self.digest else None


def _kept_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: headers[k] for k in ("Cache-Control", "Expires", "Date") if k in headers}


class CacheWriter:
    """Small cache files (core metadata, index pages) written on a thread of their own.

    Each file goes in through atomic_write (fsync, then rename), which costs milliseconds
    on a busy disk; a lock waiting for the metadata of the next candidate should not wait
    for that too.  Until a file is on disk, :meth:`read` returns its bytes from memory, so
    a reader in this process never misses it.  The writing thread finishes every queued
    file before the interpreter exits (concurrent.futures joins its workers then).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[Path, bytes] = {}
        self._pool: ThreadPoolExecutor | None = None

    def write(self, path: Path, data: bytes) -> None:
        """Queue *data* to replace *path*; a later write of the same path wins."""
        with self._lock:
            queued = path in self._pending
            self._pending[path] = data
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wheelferry-cache")
            if not queued:
                self._pool.submit(self._write, path)

    def read(self, path: Path) -> bytes | None:
        """The bytes of *path*: queued ones first, else the file's (None when unreadable)."""
        with self._lock:
            data = self._pending.get(path)
        if data is not None:
            return data
        try:
            return path.read_bytes()
        except OSError:
            return None

    def flush(self) -> None:
        """Wait until every queued file is on disk."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def _write(self, path: Path) -> None:
        while True:
            with self._lock:
                data = self._pending.get(path)
            if data is None:
                return
            with contextlib.suppress(OSError):  # a read-only or full cache only costs speed
                atomic_write(path, data)
            with self._lock:
                if self._pending.get(path) is data:
                    del self._pending[path]
                    return
            # written again while this copy went to disk: write the newer one too


CACHE_WRITER = CacheWriter()


class PageCache:
    """Index pages on disk, keyed by credential-free URL and Accept; fresh ones cost no request.

    Each entry is ``KEY.meta`` (JSON: validators, freshness, body digest) and
    ``KEY.body``; callers may keep derived data beside them (``sidecar``).  Only
    200 responses are stored; a stale entry is revalidated with If-None-Match /
    If-Modified-Since and a 304 reuses the stored body.
    """

    def __init__(self, root: Path | None, clock: Callable[[], float] = time.time) -> None:
        self.root = Path(root) if root is not None else None
        self.clock = clock

    def key(self, url: str, accept: str) -> str:
        """The entry name for *url* fetched with *accept*."""
        return hashlib.sha256(f"{strip_credentials(url)}\n{accept}".encode()).hexdigest()

    def sidecar(self, key: str, suffix: str) -> Path | None:
        """Where derived data for entry *key* lives (None without a cache directory)."""
        return None if self.root is None else self.root / key[:2] / f"{key}.{suffix}"

    def fetch(self, session: requests.Session, url: str, accept: str, *,
              use_cache: bool = True) -> Page:
        """GET *url*: a fresh stored page without a request, a stale one revalidated.

        requests exceptions propagate; error statuses come back as a Page with a reason.
        """
        key = self.key(url, accept)
        meta = self._read_meta(key) if use_cache else None
        headers = {"Accept": accept}
        if meta is not None:
            page = self._stored(key, meta)
            if self.clock() < meta.get("fresh_until", 0):
                return page
            if meta.get("etag"):
                headers["If-None-Match"] = meta["etag"]
            if meta.get("last_modified"):
                headers["If-Modified-Since"] = meta["last_modified"]
        with session.get(url, headers=headers, stream=True) as response:
            # One join of large reads: pages run to megabytes and requests' default
            # 10 KB chunks cost more than the transfer.
            body = b"".join(response.iter_content(1 << 20))
        received = self.clock()
        if response.status_code == 304 and meta is not None:
            # RFC 9111 4.3.4: the 304's headers update the stored response's.
            merged = CaseInsensitiveDict(meta.get("headers", {}))
            merged.update(_kept_headers(response.headers))
            lifetime = freshness_lifetime({**merged, "Age": response.headers.get("Age", "0")}, received)
            meta = {**meta, "fresh_until": received + (lifetime or 0.0), "headers": dict(merged),
                    "etag": response.headers.get("ETag") or meta.get("etag"),
                    "last_modified": response.headers.get("Last-Modified") or meta.get("last_modified")}
            self._write_meta(key, meta)
            return self._stored(key, meta)
        final = strip_credentials(response.url or url)
        ctype = response.headers.get("Content-Type", "")
        if response.status_code != 200:
            return Page(final, response.status_code, ctype, reason=http_status_text(response))
        digest = hashlib.sha256(body).hexdigest()
        lifetime = freshness_lifetime(response.headers, received)
        validators = response.headers.get("ETag") or response.headers.get("Last-Modified")
        # A page with no lifetime and no validators can only be read again in full: keep nothing.
        if self.root is not None and lifetime is not None and (lifetime or validators):
            record = {
                "format": _CACHE_FORMAT, "url": final, "content_type": ctype, "digest": digest,
                "etag": response.headers.get("ETag"),
                "last_modified": response.headers.get("Last-Modified"),
                "fresh_until": received + lifetime, "headers": _kept_headers(response.headers),
            }
            same_body = meta is not None and meta["digest"] == digest
            if not same_body:
                self._store(key, body, record)
            else:
                self._write_meta(key, record)
        return Page(final, 200, ctype, digest, content=body)

    def _stored(self, key: str, meta: JSONObject) -> Page:
        return Page(meta["url"], 200, meta.get("content_type", ""), meta["digest"], from_cache=True,
                    body_path=self.sidecar(key, "body"))

    def _read_meta(self, key: str) -> JSONObject | None:
        path = self.sidecar(key, "meta")
        if path is None:
            return None
        raw = CACHE_WRITER.read(path)
        try:
            meta = json.loads(raw) if raw is not None else None
        except ValueError:
            return None
        ok = isinstance(meta, dict) and meta.get("format") == _CACHE_FORMAT and \
            isinstance(meta.get("url"), str) and isinstance(meta.get("digest"), str)
        return meta if ok else None

    def _write_meta(self, key: str, meta: JSONObject) -> None:
        path = self.sidecar(key, "meta")
        if path is not None:
            CACHE_WRITER.write(path, json.dumps(meta, sort_keys=True).encode())

    def _store(self, key: str, body: bytes, meta: JSONObject) -> None:
        # Body first (one writing thread, in order): a reader that sees the new record finds a
        # body that matches its digest; a body that did not get written fails that check.
        body_path = self.sidecar(key, "body")
        assert body_path is not None
        CACHE_WRITER.write(body_path, body)
        self._write_meta(key, meta)
