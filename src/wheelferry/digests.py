"""Every hash an index may advertise for a file (PEP 503, 691), computed in one pass and checked.

An index that lists ``#md5=...`` or ``{"sha512": ...}`` makes a promise about the
file; pip refuses a file that breaks it, and so does wheelferry.  sha256 is always
computed as well: it is the name of the file in the cache and in the lock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from wheelferry.errors import IndexHashError
from wheelferry.urls import redact_url

# The algorithms pip accepts in a link's hash (pip's hashes.py), strongest first.
SUPPORTED = ("sha512", "sha384", "sha256", "sha224", "sha1", "md5")


def checkable(advertised: Mapping[str, str]) -> dict[str, str]:
    """The advertised hashes wheelferry can check (unknown algorithms are left aside, as pip does)."""
    return {k: v.lower() for k, v in advertised.items() if k in SUPPORTED}


class Digests:
    """sha256 plus every checkable algorithm in *advertised*, fed the same chunks."""

    def __init__(self, advertised: Mapping[str, str] = {}) -> None:
        self.expected = checkable(advertised)
        self._hashes: dict[str, hashlib._Hash] = {"sha256": hashlib.sha256()}
        for name in self.expected:
            # md5/sha1 are compared with what an index says, never trusted for security.
            self._hashes.setdefault(name, hashlib.new(name, usedforsecurity=False)
                                    if name in ("md5", "sha1") else hashlib.new(name))
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self.size += len(chunk)
        for h in self._hashes.values():
            h.update(chunk)

    def hexdigest(self, name: str = "sha256") -> str:
        return str(self._hashes[name].hexdigest())

    def contradictions(self) -> list[tuple[str, str, str]]:
        """``(algorithm, advertised, computed)`` for every advertised hash the bytes do not match."""
        return [(name, want, self.hexdigest(name)) for name, want in sorted(self.expected.items())
                if self.hexdigest(name) != want]


def contradiction_error(filename: str, url: str, wrong: list[tuple[str, str, str]],
                        index: str | None = None) -> IndexHashError:
    """The index's fault, said as such: its page promises a hash its own file does not have."""
    where = f"the index {redact_url(index)}" if index else "the index"
    said = "; ".join(f"{name} {want} advertised, the file has {got}" for name, want, got in wrong)
    return IndexHashError(
        f"{where} contradicts itself about {filename}: {said} (file from {redact_url(url)})",
        hint="the index's page and the file it serves disagree, so locking again would meet the "
             "same wrong hash; ask the index's operators to fix it, or use another mirror")
