"""The network of one build-side command: an HTTP session with pip's settings, the index, metadata."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from wheelferry import http
from wheelferry.cache import WheelCache
from wheelferry.config import IndexConfig, NetSettings, Warn, check_secure_origins
from wheelferry.index import IndexClient
from wheelferry.metadata import MetadataSource
from wheelferry.pages import DistFile

# Dependency-confusion warnings shown one line each before the rest are summed up in one.
SHOWN_SHADOWED = 3


def open_session(net: NetSettings, urls: Sequence[str], reads: IndexConfig, *,
                 describe: Callable[[str], None] | None = None) -> http.Session:
    """A session for *urls* with pip's network settings *net*, after pip's secure-origin check.

    *reads* holds the indexes and find-links that will be read: each must pass pip's
    secure-origin rule before any request is made.  *describe*, when given, is told which
    CA bundle, client certificate and proxy each host gets.
    """
    net.check()
    check_secure_origins(reads, net.trusted_hosts)
    session = http.make_session(urls, net=net)  # looked up on the module: tests wrap it
    http.warm_tls(session, urls)
    if describe is not None:
        seen: set[tuple[str, str]] = set()
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme in ("http", "https") and (parts.scheme, parts.netloc) not in seen:
                seen.add((parts.scheme, parts.netloc))
                describe(f"network: {session.describe(url)}")
    return session


class Network:
    """The index, metadata source and HTTP session one command uses."""

    def __init__(self, config: IndexConfig, net: NetSettings, cache_root: Path, *, jobs: int,
                 warn: Warn, describe: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.cache_root = cache_root
        self._warn = warn
        urls = ([config.index_url] if config.index_url else []) + list(config.extra_index_urls)
        self.index_urls = urls + list(config.find_links)
        self.session = open_session(net, self.index_urls, config, describe=describe)
        self.shadowed: list[str] = []
        self.index = IndexClient(config, self.session, warn=self._index_warning, jobs=jobs,
                                 cache_dir=cache_root / "pages")
        # A wheel read whole while locking lands in the wheel cache that build reads.
        self.metadata = MetadataSource(self.session, cache_root / "metadata", jobs=jobs,
                                       wheels=WheelCache(cache_root / "wheels"))

    def _index_warning(self, text: str) -> None:
        # One project on several indexes is worth one line each only when it is rare.
        if " is offered by more than one source" in text:
            self.shadowed.append(text)
            if len(self.shadowed) <= SHOWN_SHADOWED:
                self._warn(text)
        else:
            self._warn(text)

    def summarize_warnings(self) -> None:
        """After the work: one line for the dependency-confusion warnings not shown."""
        hidden = self.shadowed[SHOWN_SHADOWED:]
        if hidden:
            names = sorted(t.split(" is offered", 1)[0] for t in hidden)
            self._warn(f"{len(hidden)} more projects are offered by more than one source "
                       f"({', '.join(names[:12])}{', ...' if len(names) > 12 else ''}); pin each to "
                       "the index you trust, or drop an extra index")

    def hash_dist(self, dist: DistFile) -> tuple[str, int | None]:
        """sha256 and size of a locked file: as the index says, else from its one download."""
        found: tuple[str, int | None] = self.metadata.file_facts(dist)
        return found
