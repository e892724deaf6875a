"""Wheel checks before a wheel is installed: no path outside the install, no links, no zip bombs.

Also plans which wheels may be installed side by side (they write no file in common).
Standard library only.
"""

from __future__ import annotations

import configparser
import re
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

from wheelferry.errors import InstallError

# What zipfile raises for a damaged or unusual archive: an unknown method or version and
# encryption are NotImplementedError or RuntimeError, a short member EOFError or zlib.error.
ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, NotImplementedError, RuntimeError,
              EOFError, zlib.error, ValueError)
# A zip bomb guard: refuse members that inflate more than this ratio past this size.
MAX_RATIO = 200
MAX_PLAIN = 100 * 1000 * 1000


def _claimed(name: str) -> str:
    """Where a wheel member lands, as a key shared by wheels that would write the same file."""
    head, _, rest = name.partition("/")
    if head.endswith(".data") and rest:
        scheme, _, sub = rest.partition("/")
        # In a virtual environment purelib and platlib are one directory (PEP 427 .data schemes).
        return sub if scheme in ("purelib", "platlib") else f"{scheme}:{sub}"
    return name


def check_wheel_zip(path: Path) -> frozenset[str]:
    """Refuse a wheel whose zip could write outside its install or inflate without bound.

    Returns the files it would install (scripts as ``scripts:NAME``), so wheels
    that share a file are never installed side by side.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            entry_points = [zf.read(i) for i in infos
                            if i.filename.endswith(".dist-info/entry_points.txt") and i.file_size < 1 << 20]
    except ZIP_ERRORS as exc:
        raise InstallError(f"{path.name} is not a readable zip ({exc})") from None
    plain = 0
    claimed = set()
    for info in infos:
        name = info.filename
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts or "\\" in name:
            raise InstallError(f"{path.name} holds {name!r}, a path outside the install; refused "
                               f"before anything was written", hint="the wheel is hostile or broken; do not install it")
        if (info.external_attr >> 16) & 0o170000 == 0o120000:
            raise InstallError(f"{path.name} holds a symbolic link {name!r}; refused",
                               hint="wheels never contain links")
        plain += info.file_size
        if not name.endswith("/"):
            claimed.add(_claimed(name))
    packed = max(path.stat().st_size, 1)
    if plain > MAX_PLAIN and plain > MAX_RATIO * packed:
        raise InstallError(f"{path.name} inflates to {plain} bytes from {packed} (a zip bomb?); refused")
    for text in entry_points:
        parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        try:
            parser.read_string(text.decode("utf-8", errors="replace"))
        except configparser.Error:
            continue  # pip judges malformed entry points itself
        for section in ("console_scripts", "gui_scripts"):
            if parser.has_section(section):
                claimed.update(f"scripts:{key.strip()}" for key in parser[section])
    return frozenset(claimed)


def plan_groups(claims: Sequence[tuple[str, int, frozenset[str]]], jobs: int) -> list[list[str]]:
    """Split wheels (name, size, claimed files) into at most *jobs* groups to install side by side.

    Wheels that would write the same file stay in one group, so their order is
    pip's as before; groups are balanced by size, largest first.
    """
    parent = list(range(len(claims)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for i, (_, _, files) in enumerate(claims):
        for f in files:
            j = owner.setdefault(f, i)
            if root(j) != root(i):
                parent[root(j)] = root(i)
    parts: dict[int, list[int]] = {}
    for i in range(len(claims)):
        parts.setdefault(root(i), []).append(i)
    bins: list[tuple[int, list[str]]] = [(0, []) for _ in range(max(1, min(jobs, len(parts))))]
    for members in sorted(parts.values(), key=lambda m: (-sum(claims[i][1] for i in m), m)):
        load, names = min(bins, key=lambda b: b[0])
        bins[bins.index((load, names))] = (load + sum(claims[i][1] for i in members),
                                          names + [claims[i][0] for i in members])
    return [sorted(names) for _, names in bins if names]
