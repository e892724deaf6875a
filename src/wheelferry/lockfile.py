"""The canonical lock record (``wheelferry.lock.json``): model, JSON form, validation.

Standard library only: the air-gapped half reads locks from bundles with it.
The JSON is deterministic (sorted keys and lists, fixed indent, trailing
newline), so writing the same lock twice gives byte-identical files.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from wheelferry.errors import LockFileError
from wheelferry.files import SHA256_HEX
from wheelferry.jsontypes import JSONObject, JSONValue, located_objects

LOCK_FILENAME = "wheelferry.lock.json"
LOCK_VERSION = 1


@dataclass(frozen=True)
class WheelFile:
    """One wheel file: where it came from and what it must hash to."""

    filename: str
    sha256: str
    size: int | None
    urls: tuple[str, ...]  # credential-free; tried in order by the fetcher
    requires_python: str | None = None
    upload_time: str | None = None

    def to_json(self) -> JSONObject:
        return {
            "filename": self.filename,
            "sha256": self.sha256,
            "size": self.size,
            "urls": list(self.urls),
            "requires-python": self.requires_python,
            "upload-time": self.upload_time,
        }


@dataclass(frozen=True)
class Edge:
    """A requirement edge: ``parent`` (None = the spec itself) asked for ``requirement``."""

    parent: str | None
    requirement: str

    def to_json(self) -> JSONObject:
        return {"parent": self.parent, "requirement": self.requirement}


@dataclass(frozen=True)
class TrimmedEdge:
    """An edge deliberately not followed: ``reason`` is ``excluded`` or ``extra``."""

    parent: str | None
    requirement: str
    reason: str

    def to_json(self) -> JSONObject:
        return {"parent": self.parent, "requirement": self.requirement, "reason": self.reason}


@dataclass(frozen=True)
class RemovedPackage:
    """A package that an exclusion kept out of the lock (for the trim report)."""

    name: str
    version: str | None
    size: int | None
    declared_by: tuple[str, ...]

    def to_json(self) -> JSONObject:
        return {"name": self.name, "version": self.version, "size": self.size,
                "declared-by": list(self.declared_by)}


@dataclass(frozen=True)
class LockedPackage:
    """One package pinned for one target."""

    name: str  # canonical (PEP 503 normalised)
    version: str
    wheel: str  # a key of Lock.wheels
    required_by: tuple[Edge, ...]
    dependencies: tuple[str, ...] = ()  # names of locked packages this one needs
    extras: tuple[str, ...] = ()  # extras of this package that were asked for

    def to_json(self) -> JSONObject:
        return {
            "name": self.name,
            "version": self.version,
            "wheel": self.wheel,
            "required-by": [e.to_json() for e in self.required_by],
            "dependencies": list(self.dependencies),
            "extras": list(self.extras),
        }


@dataclass(frozen=True)
class LockedTarget:
    """The resolved graph for one target."""

    id: str
    spec: str
    description: Mapping[str, JSONValue]  # Target.describe()
    markers: Mapping[str, str]  # complete PEP 508 environment
    requirements: tuple[str, ...]  # root requirements after package rules
    packages: tuple[LockedPackage, ...]
    trimmed: tuple[TrimmedEdge, ...] = ()
    removed: tuple[RemovedPackage, ...] = ()
    notes: tuple[str, ...] = ()  # which package rules applied, and why
    tags: tuple[str, ...] | None = None  # a captured target's own tag ladder

    def to_json(self) -> JSONObject:
        out: JSONObject = {
            "id": self.id,
            "spec": self.spec,
            "description": dict(self.description),
            "markers": dict(self.markers),
            "requirements": list(self.requirements),
            "packages": [p.to_json() for p in sorted(self.packages, key=lambda p: p.name)],
            "trimmed": [t.to_json() for t in sorted(
                self.trimmed, key=lambda t: (t.parent or "", t.requirement, t.reason))],
            "removed": [r.to_json() for r in sorted(self.removed, key=lambda r: r.name)],
            "notes": list(self.notes),
        }
        if self.tags is not None:
            out["tags"] = list(self.tags)
        return out

    def package(self, name: str) -> LockedPackage | None:
        for p in self.packages:
            if p.name == name:
                return p
        return None


@dataclass(frozen=True)
class SpecRecord:
    """The spec a lock was made from (no index credentials)."""

    name: str
    requirements: tuple[str, ...]
    targets: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    smoke: tuple[str, ...] = ()

    def to_json(self) -> JSONObject:
        return {
            "name": self.name,
            "requirements": list(self.requirements),
            "targets": list(self.targets),
            "exclude": list(self.exclude),
            "smoke": list(self.smoke),
        }


@dataclass(frozen=True)
class Lock:
    """A whole lock: the spec, the indexes used, one graph per target, every wheel once."""

    spec: SpecRecord
    indexes: tuple[str, ...]
    targets: tuple[LockedTarget, ...]
    wheels: Mapping[str, WheelFile] = field(default_factory=dict)
    tool: str = ""

    def to_json(self) -> JSONObject:
        return {
            "lock-version": LOCK_VERSION,
            "created-by": self.tool,
            "spec": self.spec.to_json(),
            "indexes": list(self.indexes),
            "targets": [t.to_json() for t in self.targets],
            "wheels": {k: self.wheels[k].to_json() for k in sorted(self.wheels)},
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    def target(self, target_id: str) -> LockedTarget:
        for t in self.targets:
            if t.id == target_id:
                return t
        raise LockFileError(f"the lock has no target {target_id!r}; it has {', '.join(self.target_ids)}")

    @property
    def target_ids(self) -> list[str]:
        return [t.id for t in self.targets]

    @property
    def total_size(self) -> int:
        return sum(w.size or 0 for w in self.wheels.values())


class _Problems:
    """Collects every problem with its location, then raises once."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[str] = []

    def add(self, where: str, what: str) -> None:
        self.items.append(f"{where}: {what}")

    def raise_if_any(self) -> None:
        if self.items:
            shown = "; ".join(self.items[:8])
            more = f" (and {len(self.items) - 8} more)" if len(self.items) > 8 else ""
            raise LockFileError(
                f"{self.source} is not a valid lock: {shown}{more}",
                hint="re-create it with `wheelferry lock`; a lock must not be edited by hand",
            )


def _str(d: Mapping[str, JSONValue], key: str, where: str, p: _Problems, optional: bool = False) -> str | None:
    v = d.get(key)
    if v is None and optional:
        return None
    if not isinstance(v, str) or not v:
        p.add(f"{where}.{key}", "missing or not a string")
        return None
    return v


def _strs(d: Mapping[str, JSONValue], key: str, where: str, p: _Problems) -> tuple[str, ...]:
    v = d.get(key, [])
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        p.add(f"{where}.{key}", "not a list of strings")
        return ()
    return tuple(v)


def _edges(raw: JSONValue, where: str, p: _Problems) -> Iterator[tuple[str | None, str, JSONObject]]:
    """``(parent, requirement, entry)`` of each well-formed edge in the JSON list *raw*; a problem for the rest."""
    if not isinstance(raw, list):
        p.add(where, "not a list")
        return
    for i, e in enumerate(raw):
        w = f"{where}[{i}]"
        if not isinstance(e, dict) or not isinstance(e.get("requirement"), str):
            p.add(w, "needs a 'requirement' string")
            continue
        parent = e.get("parent")
        if parent is not None and not isinstance(parent, str):
            p.add(f"{w}.parent", "not a string or null")
            continue
        yield parent, e["requirement"], e


def parse_lock(data: JSONValue, source: str = LOCK_FILENAME) -> Lock:
    """Build a :class:`Lock` from parsed JSON, reporting every problem with its location."""
    p = _Problems(source)
    if not isinstance(data, dict):
        p.add("$", "not a JSON object")
        p.raise_if_any()
    if data.get("lock-version") != LOCK_VERSION:
        p.add("lock-version", f"is {data.get('lock-version')!r}, this wheelferry reads {LOCK_VERSION}")
    spec_raw = data.get("spec") if isinstance(data.get("spec"), dict) else {}
    if not spec_raw:
        p.add("spec", "missing")
    spec = SpecRecord(
        name=_str(spec_raw, "name", "spec", p) or "",
        requirements=_strs(spec_raw, "requirements", "spec", p),
        targets=_strs(spec_raw, "targets", "spec", p),
        exclude=_strs(spec_raw, "exclude", "spec", p),
        smoke=_strs(spec_raw, "smoke", "spec", p),
    )
    wheels: dict[str, WheelFile] = {}
    wraw = data.get("wheels")
    if not isinstance(wraw, dict):
        p.add("wheels", "missing or not an object")
        wraw = {}
    for fname, w in wraw.items():
        where = f"wheels[{fname!r}]"
        if not isinstance(w, dict):
            p.add(where, "not an object")
            continue
        sha = w.get("sha256")
        if not isinstance(sha, str) or not SHA256_HEX.fullmatch(sha):
            p.add(f"{where}.sha256", "missing or not 64 lowercase hex digits")
            continue
        if not fname.endswith(".whl"):  # standard library only: verify never loads packaging
            p.add(where, "is not a wheel file name")
        size = w.get("size")
        if size is not None and (not isinstance(size, int) or size < 0):
            p.add(f"{where}.size", "not a non-negative integer")
            size = None
        urls = _strs(w, "urls", where, p)
        if not urls:
            p.add(f"{where}.urls", "empty: nowhere to fetch the file from")
        wheels[fname] = WheelFile(fname, sha, size, urls,
                                  w.get("requires-python"), w.get("upload-time"))
    targets: list[LockedTarget] = []
    if data.get("targets") == []:
        p.add("targets", "missing or empty")
    for where, t in located_objects(data.get("targets"), "targets", p.add, not_list="missing or empty"):
        pkgs: list[LockedPackage] = []
        for pw, pk in located_objects(t.get("packages"), f"{where}.packages", p.add):
            name = _str(pk, "name", pw, p)
            version = _str(pk, "version", pw, p)
            wheel = _str(pk, "wheel", pw, p)
            if wheel and wheel not in wheels:
                p.add(f"{pw}.wheel", f"{wheel} is not listed under 'wheels' (or has no valid sha256)")
            if name and version and wheel:
                pkgs.append(LockedPackage(
                    name, version, wheel,
                    tuple(Edge(parent, req)
                          for parent, req, _ in _edges(pk.get("required-by", []), f"{pw}.required-by", p)),
                    _strs(pk, "dependencies", pw, p), _strs(pk, "extras", pw, p)))
        markers = t.get("markers")
        if not isinstance(markers, dict):
            p.add(f"{where}.markers", "missing")
            markers = {}
        removed = []
        for ri, r in enumerate(t.get("removed", []) or []):
            if isinstance(r, dict) and isinstance(r.get("name"), str):
                removed.append(RemovedPackage(r["name"], r.get("version"), r.get("size"),
                                              tuple(r.get("declared-by", []))))
            else:
                p.add(f"{where}.removed[{ri}]", "needs a 'name'")
        tags = t.get("tags")
        description = t.get("description")
        targets.append(LockedTarget(
            id=_str(t, "id", where, p) or "",
            spec=_str(t, "spec", where, p) or "",
            description=description if isinstance(description, dict) else {},
            markers={str(k): str(v) for k, v in markers.items()},
            requirements=_strs(t, "requirements", where, p),
            packages=tuple(pkgs),
            trimmed=tuple(TrimmedEdge(parent, req, str(e.get("reason", "")))
                          for parent, req, e in _edges(t.get("trimmed", []), f"{where}.trimmed", p)),
            removed=tuple(removed),
            notes=_strs(t, "notes", where, p),
            tags=tuple(tags) if isinstance(tags, list) else None,
        ))
    p.raise_if_any()
    return Lock(spec, _strs(data, "indexes", "$", p), tuple(targets), wheels,
                str(data.get("created-by", "")))


def loads_lock(text: str | bytes, source: str = LOCK_FILENAME) -> Lock:
    """Parse lock JSON text; a syntax error is a :class:`LockFileError` naming the line."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise LockFileError(f"{source} is not valid JSON: {exc}",
                            hint="re-create it with `wheelferry lock`") from None
    return parse_lock(data, source)
