"""Which lock of a bundle fits this host: ask the interpreter itself, compare tags and markers.

Standard library only.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Callable

from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from wheelferry.errors import InstallError, UsageError, WheelferryError
from wheelferry.lockfile import Lock, LockedTarget
from wheelferry.offline.probe import describe_interpreter

Runner = Callable[..., "subprocess.CompletedProcess[str]"]


@dataclass(frozen=True)
class Host:
    """The interpreter being installed for: its marker environment and supported wheel tags."""

    markers: dict[str, str]
    tags: frozenset[str]
    executable: str

    def describe(self) -> str:
        m = self.markers
        return (f"Python {m.get('python_full_version', '?')} on {m.get('sys_platform', '?')} "
                f"{m.get('platform_machine', '?')} ({self.executable})")


def probe_host(python: str, run: Runner = subprocess.run) -> Host:
    """Ask *python* itself (through the kit's vendored packaging) for its markers and wheel tags."""
    try:
        data = describe_interpreter(python, run)
    except WheelferryError as exc:
        raise InstallError(str(exc), hint=exc.hint) from None
    return Host(dict(data["marker_environment"]), frozenset(data["compatible_tags"]),
                str(data["executable"]))


def _newest_glibc(tags: Iterable[str]) -> tuple[int, int] | None:
    found = [(int(m.group(1)), int(m.group(2))) for t in tags
             for m in [re.search(r"-manylinux_(\d+)_(\d+)_", t)] if m]
    return max(found) if found else None


def _glibc_text(v: tuple[int, int] | None) -> str:
    return "none" if v is None else f"{v[0]}.{v[1]}"


def capture_drift(target: LockedTarget, host: Host) -> list[str]:
    """How a host captured with `probe` (a target with its own tags) differs from this one now."""
    if target.tags is None:
        return []
    out = []
    for key in ("python_full_version", "platform_machine", "sys_platform", "implementation_name"):
        was, now = target.markers.get(key), host.markers.get(key)
        if was != now:
            out.append(f"{key} was {was} when captured, is {now} now")
    glibc_then, glibc_now = _newest_glibc(target.tags), _newest_glibc(host.tags)
    if glibc_then != glibc_now:
        out.append(f"glibc was {_glibc_text(glibc_then)} when captured, is {_glibc_text(glibc_now)} now")
    lost = [t for t in target.tags if t not in host.tags]
    if lost:
        out.append(f"{len(lost)} wheel tags of the capture are not accepted here now (e.g. {lost[0]})")
    return out


def wheel_tags(filename: str) -> set[str]:
    """Expanded ``interpreter-abi-platform`` tags of a wheel file name (PEP 427, PEP 425)."""
    try:
        return {str(tag) for tag in parse_wheel_filename(filename)[3]}
    except InvalidWheelFilename:
        return set()


def target_fits(target: LockedTarget, lock: Lock, host: Host) -> bool:
    """Same Python version, platform and machine, and every wheel has a tag this host accepts."""
    for key in ("python_version", "sys_platform", "platform_machine"):
        if target.markers.get(key, "").lower() != host.markers.get(key, "").lower():
            return False
    return all(wheel_tags(lock.wheels[p.wheel].filename) & host.tags for p in target.packages)


def choose_target(lock: Lock, host: Host, target_id: str | None = None) -> LockedTarget:
    """The lock target to install: *target_id* if given, else the single one that fits *host*."""
    if target_id is not None:
        if target_id not in lock.target_ids:
            raise UsageError(f"the bundle has no target {target_id!r}",
                             hint=f"its targets are {', '.join(lock.target_ids)}")
        return lock.target(target_id)
    fits = [t for t in lock.targets if target_fits(t, lock, host)]
    if len(fits) == 1:
        return fits[0]
    if not fits:
        raise InstallError(f"no target of this bundle fits {host.describe()}; the bundle has "
                           f"{', '.join(lock.target_ids)}",
                           hint="lock for this host (wheelferry probe, then lock --target @capture) "
                                "or force one with --target")
    raise InstallError(f"several targets fit {host.describe()}: {', '.join(t.id for t in fits)}",
                       hint="choose one with --target (e.g. the cpu or gpu variant)")
