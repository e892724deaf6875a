"""``diff``: what changed between two verified bundles, per target, and re-published wheels.

Standard library only.  Packages are compared by name within each target;
versions are ordered as PEP 440 orders them.  A wheel file name (name, version
and tags) that appears in both bundles with a different sha256 was re-published
or tampered with: that is an alarm, and ``diff`` fails.
"""

from __future__ import annotations

from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

from wheelferry.jsontypes import JSONObject
from wheelferry.lockfile import Lock


@dataclass(frozen=True)
class Change:
    """One package that differs in one target; an absent side is None."""

    name: str
    old: str | None
    new: str | None
    kind: str  # added | removed | upgraded | downgraded | rebuilt

    def to_json(self) -> JSONObject:
        return {"name": self.name, "old": self.old, "new": self.new, "kind": self.kind}


@dataclass(frozen=True)
class TargetDiff:
    """The changes of one target and its size before and after (bytes; 0 if absent)."""

    target: str
    changes: tuple[Change, ...]
    old_size: int
    new_size: int
    presence: str = "both"  # both | added | removed

    def of(self, kind: str) -> list[Change]:
        return [c for c in self.changes if c.kind == kind]

    def to_json(self) -> JSONObject:
        return {"target": self.target, "presence": self.presence,
                **{k: [c.to_json() for c in self.of(k)]
                   for k in ("added", "removed", "upgraded", "downgraded", "rebuilt")},
                "old-size": self.old_size, "new-size": self.new_size,
                "size-change": self.new_size - self.old_size}


@dataclass(frozen=True)
class Republished:
    """A wheel file with the same name in both bundles but different bytes."""

    file: str
    old_sha256: str
    new_sha256: str

    def to_json(self) -> dict[str, str]:
        return {"file": self.file, "old-sha256": self.old_sha256, "new-sha256": self.new_sha256}


@dataclass(frozen=True)
class BundleDiff:
    """Everything that differs between two bundles."""

    old: str
    new: str
    targets: tuple[TargetDiff, ...]
    republished: tuple[Republished, ...]
    old_size: int
    new_size: int

    def to_json(self) -> JSONObject:
        return {"old": self.old, "new": self.new, "targets": [t.to_json() for t in self.targets],
                "republished": [r.to_json() for r in self.republished],
                "old-size": self.old_size, "new-size": self.new_size,
                "size-change": self.new_size - self.old_size}


def _order(old: str, new: str) -> str:
    try:
        a, b = Version(old), Version(new)
    except InvalidVersion:
        a, b = old, new  # type: ignore[assignment]
    return "upgraded" if b > a else "downgraded" if b < a else "rebuilt"


def _packages(lock: Lock, target_id: str) -> dict[str, tuple[str, str]]:
    for t in lock.targets:
        if t.id == target_id:
            return {p.name: (p.version, p.wheel) for p in t.packages}
    return {}


def _size(lock: Lock, packages: dict[str, tuple[str, str]]) -> int:
    return sum(lock.wheels[w].size or 0 for _, w in packages.values())


def diff_locks(old: Lock, new: Lock, old_name: str = "old", new_name: str = "new") -> BundleDiff:
    """Compare the locks of two verified bundles."""
    ids = list(dict.fromkeys([*old.target_ids, *new.target_ids]))
    targets = []
    for tid in ids:
        a, b = _packages(old, tid), _packages(new, tid)
        changes = []
        for name in sorted(set(a) | set(b)):
            if name not in a:
                changes.append(Change(name, None, b[name][0], "added"))
            elif name not in b:
                changes.append(Change(name, a[name][0], None, "removed"))
            elif a[name][0] != b[name][0]:
                changes.append(Change(name, a[name][0], b[name][0], _order(a[name][0], b[name][0])))
            elif a[name][1] != b[name][1]:
                # Same version, another wheel file (e.g. a different platform tag).
                changes.append(Change(name, a[name][1], b[name][1], "rebuilt"))
        presence = "both" if tid in old.target_ids and tid in new.target_ids else \
            "added" if tid in new.target_ids else "removed"
        targets.append(TargetDiff(tid, tuple(changes), _size(old, a), _size(new, b), presence))
    republished = tuple(Republished(f, old.wheels[f].sha256, new.wheels[f].sha256)
                        for f in sorted(set(old.wheels) & set(new.wheels))
                        if old.wheels[f].sha256 != new.wheels[f].sha256)
    return BundleDiff(old_name, new_name, tuple(targets), republished, old.total_size, new.total_size)


def _signed(n: int) -> str:
    sign = "+" if n >= 0 else "-"
    size = float(abs(n))
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{sign}{size:.0f} {unit}" if unit == "B" else f"{sign}{size:.1f} {unit}"
        size /= 1000
    return f"{sign}{size:.1f} GB"


_MARK = {"added": "+", "removed": "-", "upgraded": "^", "downgraded": "v", "rebuilt": "~"}


def render_diff(d: BundleDiff) -> str:
    """Human text: per target counts and one line per change, the alarm first and loud."""
    lines = []
    for r in d.republished:
        lines.append(f"!!! ALARM: {r.file} is in both bundles with DIFFERENT contents "
                     f"(sha256 {r.old_sha256[:16]}… -> {r.new_sha256[:16]}…): re-published or tampered")
    for t in d.targets:
        note = {"added": " (new target)", "removed": " (target dropped)"}.get(t.presence, "")
        counts = ", ".join(f"{len(t.of(k))} {k}" for k in ("added", "removed", "upgraded", "downgraded"))
        lines.append(f"{t.target}{note}: {counts}; size {_signed(t.new_size - t.old_size)}")
        for c in t.changes:
            what = c.new if c.kind == "added" else c.old if c.kind == "removed" else f"{c.old} -> {c.new}"
            lines.append(f"  {_MARK[c.kind]} {c.name} {what}")
    lines.append(f"total wheel size {_signed(d.new_size - d.old_size)} ({d.old} -> {d.new})")
    return "\n".join(lines)


def backwards(d: BundleDiff, old_sequence: int, new_sequence: int) -> list[str]:
    """Lines saying where the pair goes backwards: the sequence order, and each package downgrade."""
    lines = []
    if old_sequence > new_sequence:
        lines.append(f"{d.old} carries the higher sequence ({old_sequence} > {new_sequence}): "
                     f"{d.new} is the older bundle")
    down = [f"{c.name} {c.old} -> {c.new} ({t.target})" for t in d.targets for c in t.of("downgraded")]
    if down:
        shown = ", ".join(down[:5]) + (f" and {len(down) - 5} more" if len(down) > 5 else "")
        lines.append(f"{d.new} goes backwards for {len(down)} package{'s' if len(down) > 1 else ''}: {shown}")
    return lines
