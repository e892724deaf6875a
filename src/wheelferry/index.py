"""Package indexes: a client that reads, caches and merges every index and find-links page."""

from __future__ import annotations

import contextlib
import marshal
import sys
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
from wheelferry.files import atomic_write, hash_file
from wheelferry.http import Page, PageCache, describe_failure
from wheelferry.pages import (
    DistFile,
    make_dist,
    parse_html_page,
    parse_json_page,
    plausible_filename,
)
from wheelferry.urls import redact_url, strip_credentials

# DistFile and the page parsers live in pages.py; they stay importable from here.
__all__ = ["ACCEPT", "DistFile", "IndexClient", "parse_html_page", "parse_json_page"]

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
# PEP 691: prefer JSON, accept either HTML flavour from older servers.
ACCEPT = f"{JSON_V1}, {HTML_V1};q=0.2, text/html;q=0.01"
Warn = Callable[[str], None]
# marshal's format belongs to one Python version: the parsed-page cache is keyed on it.
_PARSED_FORMAT = f"wheelferry-page-1/py{sys.version_info[0]}.{sys.version_info[1]}/m{marshal.version}"


def _local_path(url: str) -> Path:
    return Path(unquote(urlsplit(url).path))


class IndexClient:
    """Every configured index and find-links location, asked per project, memoised.

    With *cache_dir*, remote pages are kept under HTTP caching rules and each
    page body's parsed files beside it, so an unchanged page is not parsed again.
    """

    def __init__(self, config: IndexConfig, session: requests.Session, *,
                 warn: Warn = lambda _msg: None, jobs: int = 8, cache_dir: Path | None = None) -> None:
        self.config = config
        self.session = session
        self.warn = warn
        self.jobs = jobs
        self._lock = threading.Lock()
        self._project_locks: dict[str, threading.Lock] = {}
        self._cache: dict[str, list[DistFile]] = {}
        self._link_pages: dict[str, list[DistFile]] = {}
        self._local_hashes: dict[tuple[str, float, int], str] = {}
        self.pages = PageCache(cache_dir)

    def files(self, project: str) -> list[DistFile]:
        """Every file any source offers for *project*, in source order (indexes, then find-links)."""
        name = canonicalize_name(project)
        with self._lock:
            if name in self._cache:
                return list(self._cache[name])
            plock = self._project_locks.setdefault(name, threading.Lock())
        with plock:
            with self._lock:
                if name in self._cache:
                    return list(self._cache[name])
            found = self._collect(name)
            with self._lock:
                self._cache[name] = found
        return list(found)

    def prefetch(self, projects: Iterable[str]) -> None:
        """Read the pages of many projects concurrently (the first failure is raised)."""
        names = list(dict.fromkeys(canonicalize_name(p) for p in projects))
        with ThreadPoolExecutor(max_workers=max(1, self.jobs)) as pool:
            for _ in pool.map(self.files, names):
                pass

    def _collect(self, name: NormalizedName) -> list[DistFile]:
        per_source: list[tuple[str, list[DistFile]]] = []
        for url in self.config.index_urls():
            per_source.append((strip_credentials(url), self._from_index(url, name)))
        for loc in self.config.find_links:
            per_source.append((strip_credentials(loc), self._from_find_links(loc, name)))
        serving = [(src, found) for src, found in per_source if found]
        if len(serving) > 1:
            listed = "; ".join(f"{redact_url(src)} ({len(found)} files)" for src, found in serving)
            self.warn(f"{name} is offered by more than one source: {listed}. Files from all of "
                      "them are candidates, so a look-alike upload on one can shadow the other "
                      "(dependency confusion); keep only the index you trust for it")
        return [f for _src, found in serving for f in found]

    # -- one source ---------------------------------------------------------

    def _from_index(self, index_url: str, name: NormalizedName) -> list[DistFile]:
        source = strip_credentials(index_url)
        base = source.rstrip("/") + "/"
        if urlsplit(base).scheme == "file":
            root = _local_path(base) / name
            for page, parse in (("index.json", parse_json_page), ("index.html", parse_html_page)):
                path = root / page
                if path.is_file():
                    return self._keep(parse(path.read_bytes(), path.as_uri(), source=source), name)
            if not _local_path(base).is_dir():
                raise IndexUnreachableError(f"index {redact_url(base)} is not a directory",
                                            hint="check --index-url / PIP_INDEX_URL")
            return []
        return self._keep(self._page(f"{base}{name}/", f"index {redact_url(source)}", source), name)

    def _from_find_links(self, location: str, name: NormalizedName) -> list[DistFile]:
        source = strip_credentials(location)
        parts = urlsplit(source)
        if parts.scheme in ("http", "https"):
            with self._lock:
                cached = self._link_pages.get(source)
            if cached is None:
                cached = self._page(source, f"find-links page {redact_url(source)}", source)
                with self._lock:
                    self._link_pages[source] = cached
            return self._keep(cached, name)
        path = _local_path(source) if parts.scheme == "file" else Path(source)
        if path.is_file():
            return self._keep(parse_html_page(path.read_bytes(), path.as_uri(), source=source), name)
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
        return out

    def _local_sha256(self, path: Path, mtime: float, size: int) -> str:
        key = (str(path), mtime, size)
        with self._lock:
            if key in self._local_hashes:
                return self._local_hashes[key]
        digest: str = hash_file(path).hexdigest()
        with self._lock:
            self._local_hashes[key] = digest
        return digest

    @staticmethod
    def _keep(found: list[DistFile], name: NormalizedName) -> list[DistFile]:
        """Only this project's files (a find-links page lists many projects)."""
        kept = [f for f in found if f.name == name]
        return found if len(kept) == len(found) else kept

    def _page(self, url: str, what: str, source: str) -> list[DistFile]:
        """The files a remote page lists ([] for 404), parsed once per page body and cached."""
        try:
            page = self.pages.fetch(self.session, url, ACCEPT)
            parsed = self._load_parsed(page, source)
            if parsed is not None:
                return parsed
            body = page.body()
            if body is None:  # the stored body changed under us: read the page afresh
                page = self.pages.fetch(self.session, url, ACCEPT, use_cache=False)
                body = page.body()
        except requests.RequestException as exc:
            raise IndexUnreachableError(f"could not read {what}: {describe_failure(exc)}",
                                        hint="check the URL, your network and proxy settings") from None
        if page.status == 404:
            return []
        if page.status != 200 or body is None:
            raise IndexUnreachableError(f"could not read {what} ({redact_url(url)}): {page.reason}",
                                        hint="check the URL and credentials, or retry later")
        ctype = page.content_type.split(";")[0].strip().lower()
        if ctype == JSON_V1 or (ctype.endswith("json") and body.lstrip()[:1] == b"{"):
            found = parse_json_page(body, page.url, source=source)
        else:
            found = parse_html_page(body, page.url, source=source)
        self._store_parsed(page, found)
        return found

    def _parsed_path(self, page: Page) -> Path | None:
        # One file per page: its header names the body it was parsed from, a new body replaces it.
        return self.pages.sidecar(self.pages.key(page.url, ACCEPT), "parsed")

    def _load_parsed(self, page: Page, source: str) -> list[DistFile] | None:
        path = self._parsed_path(page) if page.status == 200 and page.digest else None
        if path is None:
            return None
        try:
            header, rows = marshal.loads(path.read_bytes())
            if header != (_PARSED_FORMAT, page.digest, page.url):
                return None
            make: Callable[..., DistFile] = make_dist  # rows are the eight stored fields
            return [make(*row, source) for row in rows]
        except (OSError, EOFError, ValueError, TypeError):
            return None

    def _store_parsed(self, page: Page, found: list[DistFile]) -> None:
        path = self._parsed_path(page)
        if path is None:
            return
        rows = [(f.filename, f.url, dict(f.hashes), f.requires_python, f.yanked,
                 f.core_metadata if isinstance(f.core_metadata, bool) else dict(f.core_metadata),
                 f.size, f.upload_time) for f in found]
        with contextlib.suppress(OSError):
            atomic_write(path, marshal.dumps(((_PARSED_FORMAT, page.digest, page.url), rows)))
