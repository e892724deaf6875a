"""What an install changes in an environment: the installed set, up- and downgrades.

Standard library only, plus the kit's vendored packaging (PEP 440 order, PEP 503 names).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from wheelferry.errors import InstallError
from wheelferry.jsontypes import JSONObject


@dataclass(frozen=True)
class Changes:
    """What an install changes in an environment, by canonical project name."""

    added: tuple[tuple[str, str], ...] = ()
    removed: tuple[tuple[str, str], ...] = ()
    upgraded: tuple[tuple[str, str, str], ...] = ()
    downgraded: tuple[tuple[str, str, str], ...] = ()
    unchanged: int = 0

    def lines(self) -> list[str]:
        """One line per change: ``+ name 1.0``, ``- name 1.0``, ``name 1.0 -> 2.0``."""
        out = [f"{n} {a} -> {b}" for n, a, b in self.upgraded]
        out += [f"{n} {a} -> {b} (downgrade)" for n, a, b in self.downgraded]
        out += [f"+ {n} {v}" for n, v in self.added] + [f"- {n} {v}" for n, v in self.removed]
        return out

    def summary(self) -> str:
        parts = [f"{len(self.added)} added", f"{len(self.upgraded)} upgraded"]
        if self.downgraded:
            parts.append(f"{len(self.downgraded)} downgraded")
        parts += [f"{len(self.removed)} removed", f"{self.unchanged} unchanged"]
        return ", ".join(parts)

    def to_json(self) -> JSONObject:
        return {"added": [f"{n}=={v}" for n, v in self.added],
                "removed": [f"{n}=={v}" for n, v in self.removed],
                "upgraded": [f"{n} {a} -> {b}" for n, a, b in self.upgraded],
                "downgraded": [f"{n} {a} -> {b}" for n, a, b in self.downgraded],
                "unchanged": self.unchanged}


def compare_sets(before: Mapping[str, str], after: Mapping[str, str], *, replace: bool = True) -> Changes:
    """What going from *before* to *after* ({name: version}) changes; *replace*: others are removed."""
    def newer(a: str, b: str) -> bool:
        try:
            return Version(b) > Version(a)
        except InvalidVersion:
            return b > a

    b = {canonicalize_name(k): v for k, v in before.items()}
    a = {canonicalize_name(k): v for k, v in after.items()}
    added = tuple(sorted((n, v) for n, v in a.items() if n not in b))
    removed = tuple(sorted((n, v) for n, v in b.items() if n not in a)) if replace else ()
    up, down, same = [], [], 0
    for n in sorted(set(a) & set(b)):
        if a[n] == b[n]:
            same += 1
        elif newer(b[n], a[n]):
            up.append((n, b[n], a[n]))
        else:
            down.append((n, b[n], a[n]))
    return Changes(added, removed, tuple(up), tuple(down), same)


def check_downgrades(changes: Changes, allow: bool) -> None:
    """Refuse (exit 1) an install that would move a package to an older version, unless allowed."""
    if changes.downgraded and not allow:
        listed = ", ".join(f"{n} {a} -> {b}" for n, a, b in changes.downgraded)
        raise InstallError(f"this install would downgrade {listed}",
                           hint="pass --allow-downgrade to install the older versions on purpose; "
                                "nothing was changed")


def site_packages(env: Path) -> list[Path]:
    """The site-packages directories of a venv (POSIX ``lib/pythonX.Y`` or Windows ``Lib``)."""
    found = sorted(env.glob("lib/python*/site-packages")) + sorted(env.glob("lib64/python*/site-packages"))
    if (env / "Lib" / "site-packages").is_dir():
        found.append(env / "Lib" / "site-packages")
    unique: list[Path] = []
    for p in found:
        if p.is_dir() and not any(p.resolve() == q.resolve() for q in unique):
            unique.append(p)
    return unique


def installed_versions(env: Path) -> dict[str, str]:
    """``{canonical name: version}`` of the distributions installed in *env* (from dist-info METADATA)."""
    from email.parser import BytesHeaderParser

    out: dict[str, str] = {}
    for site in site_packages(env):
        for meta in site.glob("*.dist-info/METADATA"):
            try:
                with open(meta, "rb") as f:
                    head = f.read(64 * 1024)
            except OSError:
                continue
            msg = BytesHeaderParser().parsebytes(head.split(b"\n\n", 1)[0] + b"\n")
            name, version = msg.get("Name"), msg.get("Version")
            if name and version:
                out[canonicalize_name(str(name))] = str(version).strip()
    return out
