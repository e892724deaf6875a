"""Fetch locked wheels into the cache: parallel, resumable, hashed while streaming.

Each wheel is tried at each of its URLs in order.  Bytes are streamed in 512 KiB
chunks into the cache's partial area while SHA256 is computed (for the largest wheels
on a thread of its own, see ``cache.BackgroundHash``); only a file
whose size and hash match the lock is moved into the cache.  A dropped
connection resumes with an HTTP Range request from the partial's length.
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, NoReturn
from urllib.parse import urlsplit
from urllib.request import url2pathname

import requests
import urllib3

from wheelferry.cache import (
    HTML_PAGE,
    LockWaitCancelled,
    Partial,
    WheelCache,
    looks_like_html,
)
from wheelferry.errors import FetchError
from wheelferry.files import FILE_CHUNK
from wheelferry.http import NET_CHUNK, describe_failure
from wheelferry.jsontypes import JSONObject
from wheelferry.lockfile import WheelFile
from wheelferry.urls import redact_url

if TYPE_CHECKING:
    from tqdm import tqdm

ATTEMPTS_PER_URL = 4
TIMEOUT = (15.0, 60.0)  # (connect, read) seconds: a read stall counts as a dropped connection
_BACKOFF = 0.25
_DROPPED = (
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.ReadTimeoutError,
    http.client.IncompleteRead,
    ConnectionError,
)



@dataclass(frozen=True)
class FetchResult:
    """One wheel in the cache: where it is, where it came from, what it cost."""

    wheel: WheelFile
    path: Path
    url_used: str | None  # credential-free; None when the file was already cached
    downloaded_bytes: int
    from_cache: bool
    started: float = 0.0  # time.monotonic() stamps, for fetch_summary
    finished: float = 0.0


@dataclass(frozen=True)
class FetchEvent:
    """Progress reported to ``on_event``: ``start``, ``bytes``, ``retry``, ``failover``, ``done``."""

    kind: str
    filename: str
    url: str | None = None  # redacted
    nbytes: int = 0
    message: str = ""


@dataclass(frozen=True)
class UrlFailure:
    """Why one URL did not give the wheel."""

    url: str  # redacted
    reason: str


_REFUSED = re.compile(r"^HTTP (401|403)\b")
CREDENTIALS_HINT = (
    "the lock holds no credentials (it never does): give them where the wheels are fetched "
    "from, e.g. `wheelferry build --lock DIR --index-url https://USER:PASSWORD@HOST/simple/`, "
    "--extra-index-url, pip's configuration (PIP_INDEX_URL) or ~/.netrc; they are used for "
    "the requests and never written down")
MISMATCH_HINT = (
    "the server sends other bytes than the lock records: if its index page still advertises the "
    "recorded sha256, the index contradicts its own file (its fault: ask its operators, or fetch "
    "from another mirror with --index-url; locking again would record the same wrong hash); if "
    "the page now lists another hash, the file was replaced after locking: find out why first")


def _hint(failures: Sequence[UrlFailure]) -> str:
    if failures and all(_REFUSED.match(f.reason) for f in failures):
        return CREDENTIALS_HINT
    if any(f.reason.startswith("sha256 mismatch") for f in failures):
        return MISMATCH_HINT
    return "check the index or mirror is reachable, or pass another with --index-url"


class WheelDownloadError(FetchError):
    """Every URL of a wheel failed; carries each URL with its reason."""

    def __init__(self, wheel: WheelFile, failures: Sequence[UrlFailure]) -> None:
        tried = "; ".join(f"{f.url} ({f.reason})" for f in failures) or "no URL in the lock"
        super().__init__(f"could not download {wheel.filename}: tried {tried}", hint=_hint(failures))
        self.wheel = wheel
        self.failures = tuple(failures)


def combined_error(failed: Sequence[WheelDownloadError], total: int) -> FetchError:
    """One error for many failed wheels: a refusal said once, other reasons grouped."""
    if len(failed) == 1:
        return failed[0]
    failures = [f for e in failed for f in e.failures]
    if failures and all(_REFUSED.match(f.reason) for f in failures):
        hosts = sorted({urlsplit(f.url).netloc for f in failures})
        codes = sorted({f.reason.split()[1] for f in failures})
        return FetchError(f"{', '.join(hosts)} refused {len(failed)} of {total} wheels "
                          f"(HTTP {'/'.join(codes)}: credentials missing or refused)",
                          hint=CREDENTIALS_HINT)
    groups: dict[str, list[str]] = {}
    for e in failed:
        reason = e.failures[-1].reason if e.failures else "no URL in the lock"
        groups.setdefault(re.sub(r"[0-9a-f]{64}", "...", reason), []).append(e.wheel.filename)
    parts = [f"{reason} ({len(names)}: {', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"
             for reason, names in sorted(groups.items(), key=lambda kv: -len(kv[1]))]
    return FetchError(f"could not download {len(failed)} of {total} wheels: " + "; ".join(parts),
                      hint=_hint(failures))


class _Retry(Exception):
    """This attempt failed in a way worth repeating at the same URL."""

    def __init__(self, reason: str, written: int = 0, *, connect: bool = False) -> None:
        super().__init__(reason)
        self.written = written  # bytes kept in the partial before the failure
        self.connect = connect  # no answer at all: worth one more try, not many


class _UrlFailed(Exception):
    """This URL will not give the wheel; try the next one."""


EventHook = Callable[[FetchEvent], object]


def fetch_wheels(
    wheels: Sequence[WheelFile],
    cache: WheelCache,
    session: requests.Session,
    *,
    jobs: int = 8,
    progress: bool = False,
    on_event: EventHook | None = None,
    timeout: tuple[float, float] = TIMEOUT,
) -> list[FetchResult]:
    """Make sure every wheel is in *cache*, downloading what is missing; results in input order."""
    unique: dict[str, WheelFile] = {}
    for w in wheels:
        unique.setdefault(w.sha256, w)
    jobs = max(1, jobs)
    _size_connection_pools(session, jobs)
    cancel = threading.Event()
    bar = _progress_bar([w for w in unique.values() if cache.path(w.sha256) is None], progress)
    fetcher = _WheelFetcher(cache, session, cancel, on_event, bar, timeout)
    done: dict[str, FetchResult] = {}
    failed: list[WheelDownloadError] = []
    pool = ThreadPoolExecutor(max_workers=min(jobs, max(1, len(unique))),
                              thread_name_prefix="wheelferry-fetch")
    try:
        # Largest first: the biggest wheel (often most of the bytes) must not start last.
        by_size = sorted(unique.values(), key=lambda w: -(w.size or 0))
        pending: set[Future[FetchResult]] = {pool.submit(fetcher.fetch_one, w) for w in by_size}
        while pending:
            finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for fut in finished:
                try:
                    result = fut.result()
                except WheelDownloadError as exc:
                    failed.append(exc)
                    continue
                done[result.wheel.sha256] = result
    except BaseException:
        # KeyboardInterrupt (in this thread or raised by a worker), disk full, a bug:
        # stop every worker at its next chunk; their partials stay resumable.
        fetcher.stop()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)
        if bar is not None:
            bar.close()
    if failed:
        raise combined_error(sorted(failed, key=lambda e: e.wheel.filename), len(unique))
    # A wheel listed twice (same hash) was fetched once; the repeat counts as cached.
    return [done[w.sha256] if done[w.sha256].wheel == w
            else replace(done[w.sha256], wheel=w, downloaded_bytes=0, from_cache=True)
            for w in wheels]


def fetch_summary(results: Sequence[FetchResult]) -> JSONObject:
    """Counts, bytes and wall-clock seconds of one fetch, for the CLI and ``--json``."""
    cached = [r for r in results if r.from_cache]
    seconds = (max(r.finished for r in results) - min(r.started for r in results)) if results else 0.0
    return {
        "files": len(results),
        "downloaded": len(results) - len(cached),
        "from_cache": len(cached),
        "bytes_downloaded": sum(r.downloaded_bytes for r in results),
        "bytes_from_cache": sum(r.path.stat().st_size for r in cached),
        "seconds": round(seconds, 3),
    }


def _size_connection_pools(session: requests.Session, jobs: int) -> None:
    """Give every HTTP adapter a pool of at least *jobs* connections per host."""
    for adapter in session.adapters.values():
        size = getattr(adapter, "_pool_maxsize", jobs)
        if isinstance(adapter, requests.adapters.HTTPAdapter) and size < jobs:
            # Re-initialise in place so a subclass (timeouts, TLS settings) keeps its behaviour.
            adapter._pool_maxsize = jobs  # type: ignore[attr-defined]
            adapter.init_poolmanager(getattr(adapter, "_pool_connections", 10), jobs,
                                     block=getattr(adapter, "_pool_block", False))


def _progress_bar(missing: Sequence[WheelFile], enabled: bool) -> tqdm[NoReturn] | None:
    if not enabled or not missing:
        return None
    from tqdm import tqdm

    return tqdm(total=sum(w.size or 0 for w in missing), unit="B", unit_scale=True,
                unit_divisor=1024, desc="downloading", dynamic_ncols=True, leave=False)


class _WheelFetcher:
    """The per-wheel download logic shared by the worker threads."""

    def __init__(self, cache: WheelCache, session: requests.Session, cancel: threading.Event,
                 on_event: EventHook | None, bar: tqdm[NoReturn] | None, timeout: tuple[float, float]) -> None:
        self.cache = cache
        self.session = session
        self.cancel = cancel
        self.on_event = on_event
        self.bar = bar
        self.bar_lock = threading.Lock()
        self.timeout = timeout
        self.active: set[requests.Response] = set()

    def stop(self) -> None:
        """Make every worker give up now: flag it and close the sockets they are reading."""
        self.cancel.set()
        with self.bar_lock:
            active = list(self.active)
        for resp in active:
            with contextlib.suppress(Exception):
                resp.close()

    def emit(self, kind: str, wheel: WheelFile, url: str | None = None, nbytes: int = 0,
             message: str = "") -> None:
        if kind == "bytes" and self.bar is not None:
            with self.bar_lock:
                self.bar.update(nbytes)
        if self.on_event is not None:
            self.on_event(FetchEvent(kind, wheel.filename, url and redact_url(url), nbytes, message))

    def fetch_one(self, wheel: WheelFile) -> FetchResult:
        started = time.monotonic()
        cached = self.cache.path(wheel.sha256, wheel.size)
        if cached is not None:
            return FetchResult(wheel, cached, None, 0, True, started, time.monotonic())
        try:
            with self.cache.lock(wheel.sha256, self.cancel):
                # Another build may have finished this entry while we waited for the lock.
                cached = self.cache.path(wheel.sha256, wheel.size)
                if cached is not None:
                    return FetchResult(wheel, cached, None, 0, True, started, time.monotonic())
                return self._download(wheel, started)
        except LockWaitCancelled:
            raise KeyboardInterrupt from None

    def _download(self, wheel: WheelFile, started: float) -> FetchResult:
        failures: list[UrlFailure] = []
        part = Partial(self.cache, wheel.sha256, wheel.size)
        self.emit("start", wheel, wheel.urls[0] if wheel.urls else None)
        for url in wheel.urls:
            try:
                got = self._from_url(wheel, url, part)
                path = part.commit(wheel.filename)
            except _UrlFailed as exc:
                failures.append(UrlFailure(redact_url(url), str(exc)))
                self.emit("failover", wheel, url, message=str(exc))
                continue
            except OSError as exc:
                part.discard()
                raise _disk_error(exc, wheel) from None
            finally:
                part.close()
            self.emit("done", wheel, url, got)
            return FetchResult(wheel, path, url, got, False, started, time.monotonic())
        raise WheelDownloadError(wheel, failures)

    def _from_url(self, wheel: WheelFile, url: str, part: Partial) -> int:
        """Bring *part* to the complete wheel from *url*; return bytes transferred."""
        scheme = urlsplit(url).scheme.lower()
        if scheme == "file":
            return self._copy_local(wheel, url, part)
        if scheme not in ("http", "https"):
            raise _UrlFailed(f"unsupported URL scheme {scheme!r}")
        transferred = connect_failures = 0
        restarted = False
        last = "no attempt made"
        for attempt in range(ATTEMPTS_PER_URL + 1):
            if self.cancel.is_set():
                raise KeyboardInterrupt
            if attempt:
                time.sleep(min(_BACKOFF * 2 ** (attempt - 1), 4.0))
                self.emit("retry", wheel, url, message=last)
            try:
                resumed = self._stream(wheel, url, part)
            except _Retry as exc:
                transferred += exc.written
                last = str(exc)
                connect_failures += exc.connect
                if connect_failures > 1:
                    break
                continue
            transferred += resumed.written
            verdict = part.mismatch()
            if verdict is None:
                return transferred
            part.discard()
            # A resumed file that does not hash may have joined two different bodies:
            # start once more from zero before blaming the URL.
            if resumed.offset and not restarted:
                restarted = True
                last = verdict
                continue
            raise _UrlFailed(verdict)
        raise _UrlFailed(last)

    def _stream(self, wheel: WheelFile, url: str, part: Partial) -> _Attempt:
        """One HTTP request, its body appended to *part*."""
        have = part.length()
        headers = {"Accept-Encoding": "identity"}
        if have:
            headers["Range"] = f"bytes={have}-"
        try:
            resp = self.session.get(url, headers=headers, stream=True, timeout=self.timeout)
        except (requests.exceptions.RetryError, requests.exceptions.InvalidURL,
                requests.exceptions.InvalidSchema) as exc:
            raise _UrlFailed(describe_failure(exc)) from None
        except _DROPPED as exc:
            reason = describe_failure(exc)
            # The session's own Retry already repeated the connect; do not multiply it.
            retry = _retry_of(self.session, url)
            if retry.connect if retry.connect is not None else retry.total:
                raise _UrlFailed(reason) from None
            raise _Retry(reason, connect=True) from None
        with self.bar_lock:
            self.active.add(resp)
        try:
            return self._read(wheel, url, part, resp, have)
        finally:
            with self.bar_lock:
                self.active.discard(resp)
            resp.close()

    def _read(self, wheel: WheelFile, url: str, part: Partial, resp: requests.Response,
              have: int) -> _Attempt:
        """Judge the answer to one request and stream its body into *part*."""
        status = resp.status_code
        if status == 416 and have:
            # The partial may already hold the whole file: judge it by its hash.
            part.open(have)
            part.close()
            return _Attempt(have, 0)
        if status >= 500 or status == 429:
            if status in (_retry_of(self.session, resp.url).status_forcelist or ()):
                raise _UrlFailed(f"HTTP {status} {resp.reason or ''}".strip() + " (after retries)")
            raise _Retry(f"HTTP {status}")
        if status not in (200, 206):
            raise _UrlFailed(f"HTTP {status} {resp.reason or ''}".strip())
        if not (status == 206 and _range_start(resp) == have):
            # A server that ignores Range answers 200 with the whole file: start over.
            have = 0
        ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if have == 0 and ctype in ("text/html", "application/xhtml+xml"):
            raise _UrlFailed(HTML_PAGE)
        return _Attempt(have, self._write_body(wheel, url, resp.iter_content(NET_CHUNK), part, have))

    def _write_body(self, wheel: WheelFile, url: str, chunks: Iterable[bytes], part: Partial,
                    have: int) -> int:
        """Append *chunks* to *part* from byte *have*; return bytes written."""
        written = 0
        try:
            part.open(have)
            for chunk in chunks:
                if self.cancel.is_set():
                    raise KeyboardInterrupt
                if have == 0 and written == 0 and looks_like_html(chunk):
                    raise _UrlFailed(HTML_PAGE)
                part.write(chunk)
                written += len(chunk)
                if wheel.size is not None and have + written > wheel.size:
                    raise _UrlFailed(f"sent more than the {wheel.size} bytes the lock records")
                self.emit("bytes", wheel, url, len(chunk))
            if self.cancel.is_set():
                # stop() closed the response under us: the body looks short, but is not.
                raise KeyboardInterrupt
            part.close()
        except _UrlFailed:
            part.discard()
            raise
        except Exception as exc:
            if self.cancel.is_set():
                raise KeyboardInterrupt from None
            if isinstance(exc, _DROPPED):
                part.close()
                raise _Retry(f"connection dropped after {have + written} bytes", written) from None
            if isinstance(exc, OSError):
                part.discard()
                raise _disk_error(exc, wheel) from None
            raise
        return written

    def _copy_local(self, wheel: WheelFile, url: str, part: Partial) -> int:
        """A ``file://`` URL (find-links on this host): copied, and hashed like a download."""
        with _open_local(url) as src:
            written = self._write_body(wheel, url, iter(lambda: src.read(FILE_CHUNK), b""), part, 0)
        verdict = part.mismatch()
        if verdict is not None:
            part.discard()
            raise _UrlFailed(verdict)
        return written


def _open_local(url: str) -> BinaryIO:
    try:
        return open(url2pathname(urlsplit(url).path), "rb")
    except OSError as exc:
        raise _UrlFailed(exc.strerror or str(exc)) from None


@dataclass(frozen=True)
class _Attempt:
    offset: int  # where this request's bytes began in the file (0: from the start)
    written: int


def _retry_of(session: requests.Session, url: str) -> urllib3.util.Retry:
    """The urllib3 Retry the session applies to *url* (a no-retry policy if none)."""
    try:
        retry = getattr(session.get_adapter(url), "max_retries", None)
    except requests.exceptions.InvalidSchema:
        retry = None
    return retry if isinstance(retry, urllib3.util.Retry) else urllib3.util.Retry(0, read=False)


def _range_start(resp: requests.Response) -> int | None:
    """The first byte of a 206 answer, from ``Content-Range: bytes START-END/TOTAL``."""
    value = resp.headers.get("Content-Range", "")
    unit, _, spec = value.partition(" ")
    if unit.strip().lower() != "bytes":
        return None
    try:
        return int(spec.split("-", 1)[0])
    except ValueError:
        return None


def _disk_error(exc: OSError, wheel: WheelFile) -> FetchError:
    if exc.errno == errno.ENOSPC:
        return FetchError(f"no space left on device while writing {wheel.filename}",
                          hint="free some space in the cache directory or choose another with --cache")
    return FetchError(f"could not write {wheel.filename} into the cache: {exc.strerror or exc}",
                      hint="check the cache directory is writable, or choose another with --cache")
