"""The HTTP session: retries with backoff, default timeouts, credentials added by URL prefix."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from wheelferry import __version__
from wheelferry.urls import redact_text, redact_url, strip_credentials

# (connect, read) seconds; a read timeout is per socket read, not for a whole download.
DEFAULT_TIMEOUT = (15.0, 60.0)
USER_AGENT = f"wheelferry/{__version__}"
RETRY_STATUSES = (429, 500, 502, 503, 504)


@dataclass(frozen=True)
class _Credential:
    scheme: str
    netloc: str
    path: str
    username: str
    password: str


def _netloc(parts: Any) -> str:
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


class _TimeoutAdapter(HTTPAdapter):
    """An adapter that applies DEFAULT_TIMEOUT when the caller gives none."""

    def send(self, request: requests.PreparedRequest, stream: bool = False,
             timeout: Any = None, verify: Any = True, cert: Any = None,
             proxies: Any = None) -> requests.Response:
        return super().send(request, stream=stream,
                            timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
                            verify=verify, cert=cert, proxies=proxies)


def make_session(credential_urls: Sequence[str] = (), *, retries: int = 5, backoff: float = 0.2,
                 pool: int = 16) -> requests.Session:
    """A session that retries connects, reads, 5xx and 429 (honouring Retry-After)."""
    retry = Retry(
        total=retries, connect=retries, read=retries, status=retries, other=0,
        backoff_factor=backoff, status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET", "HEAD"}), respect_retry_after_header=True,
        raise_on_status=False, raise_on_redirect=False,
    )
    session = requests.Session()
    adapter = _TimeoutAdapter(max_retries=retry, pool_connections=pool, pool_maxsize=pool)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    session.auth = PrefixAuth(credential_urls)
    return session


def describe_failure(exc: BaseException) -> str:
    """A one-line, credential-free reason for a requests failure."""
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
    return reason


def where(url: str) -> str:
    """A URL fit to show a user: credentials redacted."""
    return redact_url(url)
