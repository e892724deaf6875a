"""Package indexes: a client that reads, caches and merges every index and find-links page."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable
from urllib.parse import unquote, urlsplit

import requests
from packaging.utils import NormalizedName, canonicalize_name

from wheelferry.config import IndexConfig
from wheelferry.errors import IndexUnreachableError
from wheelferry.files import hash_file
from wheelferry.http import PageCache, describe_failure
from wheelferry.pages import (
    DistFile,
    DroppedFiles,
    PageFiles,
    plausible_filename,
    read_html_page,
    read_json_page,
)
from wheelferry.urls import redact_url, strip_credentials

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
# PEP 691: prefer JSON, accept either HTML flavour from older servers.
ACCEPT = f"{JSON_V1}, {HTML_V1};q=0.2, text/html;q=0.01"
Warn = Callable[[str], None]
Keep = Callable[[str], bool]


def _local_path(url: str) -> Path:
    return Path(unquote(urlsplit(url).path))


class IndexClient:
    """Every configured index and find-links location, asked per project, memoised.

    Pages are decoded once per run and kept; DistFile objects are made per call,
    only for the file names the caller's *keep* admits.  With *cache_dir*, remote
    pages are kept under HTTP caching rules (a page a server marks fresh, or sends
    validators for, is not read again).  After :meth:`retain`, remote pages keep
    the entries of only the files it admits (a lock: the wheels that fit one of its
    targets); a caller asking for others gets them from the page read again whole.
    """

    def __init__(self, config: IndexConfig, session: requests.Session, *,
                 warn: Warn = lambda _msg: None, jobs: int = 8, cache_dir: Path | None = None) -> None:
        self.config = config
        self.session = session
        self.warn = warn
        self.jobs = jobs
        self._lock = threading.Lock()
        self._project_locks: dict[str, threading.Lock] = {}
        self._cache: dict[str, list[PageFiles]] = {}
        self._link_pages: dict[str, PageFiles] = {}
        self._local_hashes: dict[tuple[str, float, int], str] = {}
        self._retain: Keep | None = None
        self._failed: dict[str, BaseException] = {}  # what a read ahead met, for every asker
        self._tried: set[str] = set()  # projects whose pages were read, or tried
        self.pages = PageCache(cache_dir)

    def retain(self, keep: Keep) -> None:
        """Keep, of pages read from now on, the entries of only the file names *keep* admits.

        Every name stays listed; what a page holds beyond that is most of a run's memory
        (a 170-package tree reads 80 MB of pages for a few thousand usable wheels).
        """
        self._retain = keep

    def files(self, project: str, keep: Keep | None = None) -> list[DistFile]:
        """The files any source offers for *project*, in source order (indexes, then find-links).

        With *keep*, only files whose name it admits are returned (and built).
        """
        name = canonicalize_name(project)
        try:
            return [d for page in self._pages_of(name) for d in page.dists(keep, name)]
        except DroppedFiles:
            # Files the kept entries do not hold (an error message listing every file):
            # the pages once more, whole, for this call alone.
            return [d for page in self._collect(name, whole=True) for d in page.dists(keep, name)]

    def files_named(self, project: str, filename: str) -> list[DistFile]:
        """The files any source offers under exactly *filename*: ``files(project, keep=that name)``."""
        name = canonicalize_name(project)
        try:
            return [d for page in self._pages_of(name) for d in page.named(filename, name)]
        except DroppedFiles:
            return [d for page in self._collect(name, whole=True) for d in page.named(filename, name)]

    def _pages_of(self, name: NormalizedName, *, ahead: bool = False) -> list[PageFiles]:
        with self._lock:
            found = self._cache.get(name)
            if found is not None:
                return found
            plock = self._project_locks.setdefault(name, threading.Lock())
        with plock:
            with self._lock:
                found = self._cache.get(name)
                failed = self._failed.get(name)
            if failed is not None:
                raise failed
            if found is None:
                if ahead and name in self._tried:
                    return []  # an asker was first (and found nothing, or failed): nothing to read ahead
                self._tried.add(name)
                try:
                    found = self._collect(name)
                except BaseException as exc:
                    if ahead:  # for the askers, who may be waiting for this lock already
                        with self._lock:
                            self._failed[name] = exc
                    raise
                with self._lock:
                    self._cache[name] = found
        return found

    def read_ahead(self, projects: Iterable[str]) -> None:
        """Start reading the pages of *projects* on threads of their own, and return at once.

        A lock reads its requirements' pages first and nothing else until they are in:
        started before the resolver's modules load, they are read while those load.  A
        caller asking sooner waits for the read under way; a read that failed (after the
        session's retries) is raised to every caller that asks for that project, as if
        it had read the page itself.
        """
        for name in dict.fromkeys(canonicalize_name(p) for p in projects):
            threading.Thread(target=self._read_ahead_one, args=(name,), daemon=True,
                             name=f"wheelferry-page-{name}").start()

    def _read_ahead_one(self, name: NormalizedName) -> None:
        with contextlib.suppress(BaseException):  # kept by _pages_of for the askers
            self._pages_of(name, ahead=True)

    def prefetch(self, projects: Iterable[str]) -> None:
        """Read the pages of many projects concurrently (the first failure is raised)."""
        names = list(dict.fromkeys(canonicalize_name(p) for p in projects))
        with ThreadPoolExecutor(max_workers=max(1, self.jobs)) as pool:
            for _ in pool.map(self._pages_of, names):
                pass

    def _collect(self, name: NormalizedName, *, whole: bool = False) -> list[PageFiles]:
        per_source: list[tuple[str, PageFiles]] = []
        for url in self.config.index_urls():
            per_source.append((strip_credentials(url), self._from_index(url, name, whole)))
        for loc in self.config.find_links:
            per_source.append((strip_credentials(loc), self._from_find_links(loc, name, whole)))
        if len(per_source) == 1:
            return [per_source[0][1]]
        serving = [(src, page, n) for src, page in per_source if (n := page.count(name))]
        if len(serving) > 1 and not whole:  # a second, whole reading said it already
            listed = "; ".join(f"{redact_url(src)} ({n} files)" for src, _page, n in serving)
            self.warn(f"{name} is offered by more than one source: {listed}. Files from all of "
                      "them are candidates, so a look-alike upload on one can shadow the other "
                      "(dependency confusion); keep only the index you trust for it")
        return [page for _src, page, _n in serving]

    # -- one source ---------------------------------------------------------

    def _from_index(self, index_url: str, name: NormalizedName, whole: bool = False) -> PageFiles:
        source = strip_credentials(index_url)
        base = source.rstrip("/") + "/"
        if urlsplit(base).scheme == "file":
            root = _local_path(base) / name
            for page, read in (("index.json", read_json_page), ("index.html", read_html_page)):
                path = root / page
                if path.is_file():
                    return read(path.read_bytes(), path.as_uri(), source=source)
            if not _local_path(base).is_dir():
                raise IndexUnreachableError(f"index {redact_url(base)} is not a directory",
                                            hint="check --index-url / PIP_INDEX_URL")
            return PageFiles.of([])
        return self._page(f"{base}{name}/", f"index {redact_url(source)}", source, whole)

    def _from_find_links(self, location: str, name: NormalizedName, whole: bool = False) -> PageFiles:
        source = strip_credentials(location)
        parts = urlsplit(source)
        if parts.scheme in ("http", "https"):
            if whole:
                return self._page(source, f"find-links page {redact_url(source)}", source, whole)
            with self._lock:
                cached = self._link_pages.get(source)
            if cached is None:
                cached = self._page(source, f"find-links page {redact_url(source)}", source)
                with self._lock:
                    self._link_pages[source] = cached
            return cached
        path = _local_path(source) if parts.scheme == "file" else Path(source)
        if path.is_file():
            return read_html_page(path.read_bytes(), path.as_uri(), source=source)
        if not path.is_dir():
            raise IndexUnreachableError(f"find-links location {redact_url(source)} does not exist",
                                        hint="check --find-links / PIP_FIND_LINKS")
        out = []
        for entry in sorted(path.iterdir()):
            if not entry.is_file() or not plausible_filename(entry.name):
                continue
            dist = DistFile(entry.name, entry.resolve().as_uri())
            if dist.name != name:
                continue
            sibling = entry.with_name(entry.name + ".metadata")
            st = entry.stat()
            out.append(DistFile(
                filename=entry.name, url=entry.resolve().as_uri(),
                hashes={"sha256": self._local_sha256(entry, st.st_mtime, st.st_size)},
                core_metadata=sibling.is_file(), size=st.st_size,
                source=source,
            ))
        return PageFiles.of(out)

    def _local_sha256(self, path: Path, mtime: float, size: int) -> str:
        key = (str(path), mtime, size)
        with self._lock:
            if key in self._local_hashes:
                return self._local_hashes[key]
        digest: str = hash_file(path).hexdigest()
        with self._lock:
            self._local_hashes[key] = digest
        return digest

    def _page(self, url: str, what: str, source: str, whole: bool = False) -> PageFiles:
        """The files a remote page lists (none for 404); entries as :meth:`retain` says unless *whole*."""
        try:
            page = self.pages.fetch(self.session, url, ACCEPT)
            body = page.body()
            if body is None and page.status == 200:  # the stored body changed under us
                page = self.pages.fetch(self.session, url, ACCEPT, use_cache=False)
                body = page.body()
        except requests.RequestException as exc:
            raise IndexUnreachableError(f"could not read {what}: {describe_failure(exc)}",
                                        hint="check the URL, your network and proxy settings") from None
        if page.status == 404:
            return PageFiles.of([])
        if page.status != 200 or body is None:
            raise IndexUnreachableError(f"could not read {what} ({redact_url(url)}): {page.reason}",
                                        hint="check the URL and credentials, or retry later")
        ctype = page.content_type.split(";")[0].strip().lower()
        retain = None if whole else self._retain
        if ctype == JSON_V1 or (ctype.endswith("json") and body.lstrip()[:1] == b"{"):
            return read_json_page(body, page.url, source=source, retain=retain)
        return read_html_page(body, page.url, source=source, retain=retain)
