"""The bundle format: ``MANIFEST.json`` and ``SHA256SUMS``, written by build, read offline.

Standard library only.  Layout of ``NAME.tar`` (one top folder, ``TOP/``):

    TOP/MANIFEST.json            first member, so a verifier knows every size before the data
    TOP/SHA256SUMS               ``sha256sum -c`` format, every file but the two manifests
    TOP/lock/wheelferry.lock.json, TOP/lock/pylock.<id>.toml, TOP/lock/requirements.<id>.txt
    TOP/sbom.cdx.json            CycloneDX JSON of the wheels
    TOP/wheels/<file>.whl        each wheel once

``MANIFEST.json`` lists every member file except itself (SHA256SUMS included).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

from wheelferry.errors import VerificationError
from wheelferry.files import SHA256_HEX
from wheelferry.jsontypes import JSONObject, JSONValue, located_objects

FORMAT = "wheelferry-bundle"
FORMAT_VERSION = 1
MANIFEST_NAME = "MANIFEST.json"
SUMS_NAME = "SHA256SUMS"
SBOM_NAME = "sbom.cdx.json"
LOCK_DIR = "lock"
WHEELS_DIR = "wheels"
_SAFE_PATH = re.compile(r"^[A-Za-z0-9_.+-]+(/[A-Za-z0-9_.+-]+)*$")


@dataclass(frozen=True)
class FileEntry:
    """One file of the bundle: path relative to the top folder, sha256, size."""

    path: str
    sha256: str
    size: int

    def to_json(self) -> JSONObject:
        return {"path": self.path, "sha256": self.sha256, "size": self.size}


@dataclass(frozen=True)
class Manifest:
    """What a bundle is and holds; signed through the tar's detached signature."""

    name: str
    sequence: int
    created: str  # RFC 3339 UTC, e.g. 2026-11-23T08:00:00Z
    targets: tuple[dict[str, str], ...]  # {"id", "spec"}
    files: tuple[FileEntry, ...]
    expires: str | None = None
    tool: str = ""
    approvals: int = 1  # distinct pinned signers a verifier requires (build --approvals)

    @property
    def top(self) -> str:
        return self.name

    def to_json(self) -> JSONObject:
        return {
            "format": FORMAT,
            "format-version": FORMAT_VERSION,
            "name": self.name,
            "sequence": self.sequence,
            "created": self.created,
            "expires": self.expires,
            "tool": self.tool,
            "targets": [dict(t) for t in self.targets],
            "files": [f.to_json() for f in sorted(self.files, key=lambda f: f.path)],
            **({"approvals": self.approvals} if self.approvals > 1 else {}),
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n"

    def by_path(self) -> dict[str, FileEntry]:
        return {f.path: f for f in self.files}


def is_safe_relpath(path: str) -> bool:
    """True for a plain relative path with no ``..``, no absolute part, no odd characters."""
    return bool(_SAFE_PATH.match(path)) and ".." not in path.split("/")


def parse_manifest(data: JSONValue) -> Manifest:
    """Validate parsed MANIFEST.json; every problem is reported with its location."""
    problems: list[str] = []
    if not isinstance(data, dict):
        raise VerificationError("MANIFEST.json is not a JSON object")
    if data.get("format") != FORMAT:
        problems.append(f"format is {data.get('format')!r}, expected {FORMAT!r}")
    if data.get("format-version") != FORMAT_VERSION:
        problems.append(f"format-version is {data.get('format-version')!r}, this reads {FORMAT_VERSION}")
    name = data.get("name")
    if not isinstance(name, str) or not is_safe_relpath(name) or "/" in name:
        problems.append("name is missing or not a plain folder name")
    seq = data.get("sequence")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        problems.append("sequence is not a non-negative integer")
    created = data.get("created")
    if not isinstance(created, str):
        problems.append("created is missing")
    expires = data.get("expires")
    if expires is not None and not isinstance(expires, str):
        problems.append("expires is not a string")
    approvals = data.get("approvals", 1)
    if not isinstance(approvals, int) or isinstance(approvals, bool) or not 1 <= approvals <= 1000:
        problems.append("approvals is not an integer from 1 to 1000")
        approvals = 1
    targets = data.get("targets")
    if not isinstance(targets, list) or not all(isinstance(t, dict) for t in targets):
        problems.append("targets is not a list of objects")
        targets = []
    files: list[FileEntry] = []
    seen: set[str] = set()
    for where, f in located_objects(data.get("files"), "files", lambda w, what: problems.append(f"{w} {what}"),
                                    not_list="is not a list", not_object="is not an object"):
        path, sha, size = f.get("path"), f.get("sha256"), f.get("size")
        if not isinstance(path, str) or not is_safe_relpath(path) or path == MANIFEST_NAME:
            problems.append(f"{where}.path {path!r} is not a safe relative path")
            continue
        if path in seen:
            problems.append(f"{where}.path {path!r} is listed twice")
            continue
        if not isinstance(sha, str) or not SHA256_HEX.fullmatch(sha):
            problems.append(f"{where}.sha256 is not 64 lowercase hex digits")
            continue
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            problems.append(f"{where}.size is not a non-negative integer")
            continue
        seen.add(path)
        files.append(FileEntry(path, sha, size))
    if problems:
        raise VerificationError("MANIFEST.json is malformed: " + "; ".join(problems))
    return Manifest(
        name=str(name),
        sequence=int(seq),  # type: ignore[arg-type]
        created=str(created),
        targets=tuple({str(k): str(v) for k, v in t.items()} for t in targets),
        files=tuple(files),
        expires=expires,
        tool=str(data.get("tool", "")),
        approvals=approvals,
    )


def render_sums(entries: Iterable[FileEntry]) -> str:
    """``sha256sum -c`` text for *entries*, sorted by path."""
    return "".join(f"{e.sha256}  {e.path}\n" for e in sorted(entries, key=lambda e: e.path))


def parse_sums(text: str) -> dict[str, str]:
    """Parse ``sha256sum`` output into ``{path: sha256}``; malformed lines are an error."""
    out: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        m = re.match(r"^([0-9a-f]{64}) [ *](.+)$", line)
        if not m or not is_safe_relpath(m.group(2)):
            raise VerificationError(f"SHA256SUMS line {n} is malformed")
        if m.group(2) in out:
            raise VerificationError(f"SHA256SUMS lists {m.group(2)} twice")
        out[m.group(2)] = m.group(1)
    return out
