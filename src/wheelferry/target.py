"""Targets: the machine a lock is for, its wheel-tag ladder and its marker environment.

A target is ``PLATFORM:PYTHON[:VARIANT]`` (``linux-x86_64:3.11:gpu``) or a wheel
platform tag in place of PLATFORM (``manylinux_2_17_x86_64:3.9``).  Everything
here is pure: nothing defaults to the host; the CLI asks for the host's target
once, at the edge, through :func:`host_target`.
"""

from __future__ import annotations

import functools
import platform as _platform
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from packaging import tags
from packaging.markers import default_environment

from wheelferry.errors import TargetError

VARIANTS = ("cpu", "gpu")
DEFAULT_GLIBC = (2, 28)
DEFAULT_MACOS = (12, 0)

# PEP 600 legacy aliases: manylinux1 = glibc 2.5, manylinux2010 = 2.12, manylinux2014 = 2.17.
_LEGACY_MANYLINUX = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}
# The oldest glibc a manylinux tag exists for, per architecture (PEP 599/600).
_MIN_GLIBC = {"x86_64": 5, "i686": 5}
_LEGACY_ARCHS = {"x86_64", "i686", "aarch64", "ppc64le", "s390x", "armv7l", "ppc64"}

_OS_ALIASES = {
    "linux": "linux",
    "windows": "windows",
    "win": "windows",
    "macos": "macos",
    "darwin": "macos",
    "osx": "macos",
}
_ARCH_ALIASES = {
    "linux": {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64",
              "i686": "i686", "ppc64le": "ppc64le", "s390x": "s390x", "armv7l": "armv7l"},
    "windows": {"amd64": "amd64", "x86_64": "amd64", "arm64": "arm64", "aarch64": "arm64",
                "x86": "x86", "win32": "x86"},
    "macos": {"arm64": "arm64", "aarch64": "arm64", "x86_64": "x86_64", "amd64": "x86_64",
              "universal2": "universal2"},
}
# platform.machine() as each OS reports it, for the marker environment.
_MACHINE = {
    ("linux", "x86_64"): "x86_64", ("linux", "aarch64"): "aarch64", ("linux", "i686"): "i686",
    ("linux", "ppc64le"): "ppc64le", ("linux", "s390x"): "s390x", ("linux", "armv7l"): "armv7l",
    ("windows", "amd64"): "AMD64", ("windows", "arm64"): "ARM64", ("windows", "x86"): "x86",
    ("macos", "arm64"): "arm64", ("macos", "x86_64"): "x86_64", ("macos", "universal2"): "arm64",
}
_WIN_TAG = {"amd64": "win_amd64", "arm64": "win_arm64", "x86": "win32"}

_MANYLINUX_RE = re.compile(r"^manylinux_(\d+)_(\d+)_(\w+)$")
_LEGACY_RE = re.compile(r"^(manylinux1|manylinux2010|manylinux2014)_(\w+)$")
_MUSL_RE = re.compile(r"^musllinux_(\d+)_(\d+)_(\w+)$")
_MACOS_RE = re.compile(r"^macosx_(\d+)_(\d+)_(\w+)$")
_PY_RE = re.compile(r"^(?:cp|py)?(3)\.?(\d{1,2})(?:\.(\d{1,2}))?$")
_LEGACY_GLIBC = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


@dataclass(frozen=True)
class Target:
    """One machine to lock for: OS, architecture, libc/OS version, Python and variant."""

    os: str  # linux | windows | macos
    arch: str  # x86_64, aarch64, amd64, arm64, ...
    python: tuple[int, int]
    variant: str = "cpu"
    python_patch: int = 0
    patch_given: bool = False  # 3.11 means "any 3.11.z" for Requires-Python; 3.11.4 means exactly that
    glibc: tuple[int, int] | None = None  # linux (glibc)
    musl: tuple[int, int] | None = None  # linux (musl)
    macos: tuple[int, int] | None = None  # macos
    platform_label: str = ""  # PLATFORM as the user wrote it, normalised
    # A target captured from a real host (probe file) carries its own ladder and markers.
    captured_tags: tuple[str, ...] | None = field(default=None, compare=False)
    captured_markers: tuple[tuple[str, str], ...] | None = field(default=None, compare=False)
    captured_name: str | None = None
    # A real machine (this host, or a capture of one): "choose another target" is no advice for it.
    probed: bool = field(default=False, compare=False)

    @property
    def python_version(self) -> str:
        return f"{self.python[0]}.{self.python[1]}"

    @property
    def python_full_version(self) -> str:
        return f"{self.python[0]}.{self.python[1]}.{self.python_patch}"

    @property
    def id(self) -> str:
        """File-name-safe id, no dots: ``linux-x86_64-cp311-gpu``."""
        if self.captured_name:
            return _safe_id(self.captured_name)
        return f"{self.platform_label}-cp{self.python[0]}{self.python[1]}-{self.variant}"

    @property
    def spec(self) -> str:
        """The canonical ``PLATFORM:PYTHON:VARIANT`` string this target parses from."""
        if self.captured_name:
            return f"@{self.captured_name}"
        return f"{self.platform_label}:{self.python_version}:{self.variant}"

    def describe(self) -> dict[str, object]:
        """A JSON-ready description recorded in locks and bundles."""
        return {
            "id": self.id,
            "spec": self.spec,
            "os": self.os,
            "arch": self.arch,
            "python": self.python_full_version,
            "variant": self.variant,
            "glibc": _ver(self.glibc),
            "musl": _ver(self.musl),
            "macos": _ver(self.macos),
        }


def _ver(v: tuple[int, int] | None) -> str | None:
    return None if v is None else f"{v[0]}.{v[1]}"


def _safe_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text.replace(".", "")).strip("-") or "target"


def _parse_version_pair(text: str, what: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)[._](\d+)", text.strip())
    if not m:
        raise TargetError(f"{what} version {text!r} is not of the form MAJOR.MINOR (e.g. 2.17)")
    return int(m.group(1)), int(m.group(2))


def parse_target(
    text: str,
    *,
    glibc: str | None = None,
    macos: str | None = None,
) -> Target:
    """Parse ``PLATFORM:PYTHON[:VARIANT]``; ``glibc``/``macos`` override the defaults."""
    raw = text.strip()
    parts = raw.split(":")
    if len(parts) not in (2, 3) or not all(parts):
        raise TargetError(
            f"target {raw!r} is not PLATFORM:PYTHON[:VARIANT]",
            hint="e.g. linux-x86_64:3.11:gpu, windows-amd64:3.10, manylinux_2_17_x86_64:3.9",
        )
    plat, py, variant = parts[0].lower(), parts[1].lower(), (parts[2].lower() if len(parts) == 3 else "cpu")
    if variant not in VARIANTS:
        raise TargetError(f"target {raw!r}: variant {variant!r} is not one of {', '.join(VARIANTS)}")
    m = _PY_RE.match(py)
    if not m:
        raise TargetError(f"target {raw!r}: Python {py!r} is not a version like 3.11 or 3.11.4")
    python = (int(m.group(1)), int(m.group(2)))
    patch = int(m.group(3)) if m.group(3) else 0
    if python < (3, 7):
        raise TargetError(f"target {raw!r}: Python {python[0]}.{python[1]} is older than 3.7")
    new = functools.partial(Target, python=python, python_patch=patch, variant=variant,
                            patch_given=m.group(3) is not None)
    glibc_v = _parse_version_pair(glibc, "glibc") if glibc else None
    macos_v = _parse_version_pair(macos, "macOS") if macos else None

    for regex, kind in ((_MANYLINUX_RE, "many"), (_LEGACY_RE, "legacy"), (_MUSL_RE, "musl"), (_MACOS_RE, "mac")):
        tm = regex.match(plat)
        if not tm:
            continue
        if kind == "many":
            return new("linux", tm.group(3), glibc=(int(tm.group(1)), int(tm.group(2))),
                       platform_label=plat)
        if kind == "legacy":
            return new("linux", tm.group(2), glibc=_LEGACY_GLIBC[tm.group(1)], platform_label=plat)
        if kind == "musl":
            return new("linux", tm.group(3), musl=(int(tm.group(1)), int(tm.group(2))),
                       platform_label=plat)
        return new("macos", tm.group(3), macos=(int(tm.group(1)), int(tm.group(2))),
                   platform_label=plat)
    if plat in ("win_amd64", "win_arm64", "win32"):
        win_arch = {"win_amd64": "amd64", "win_arm64": "arm64", "win32": "x86"}[plat]
        return new("windows", win_arch, platform_label=plat)
    if plat.startswith("linux_"):
        return new("linux", plat[len("linux_"):], glibc=glibc_v or DEFAULT_GLIBC,
                   platform_label=plat)

    os_part, _, arch_part = plat.partition("-")
    os_name = _OS_ALIASES.get(os_part)
    arch = _ARCH_ALIASES.get(os_name or "", {}).get(arch_part)
    if os_name is None or arch is None:
        raise TargetError(
            f"target {raw!r}: unknown platform {plat!r}",
            hint="use linux-x86_64, linux-aarch64, windows-amd64, windows-arm64, macos-arm64, "
            "macos-x86_64, or a wheel platform tag such as manylinux_2_17_x86_64",
        )
    label = f"{os_name}-{arch}"
    if os_name == "linux":
        if glibc_v is not None and glibc_v != DEFAULT_GLIBC:
            label += f"-glibc{glibc_v[0]}{glibc_v[1]}"
        return new("linux", arch, glibc=glibc_v or DEFAULT_GLIBC, platform_label=label)
    if os_name == "macos":
        if macos_v is not None and macos_v != DEFAULT_MACOS:
            label += f"-macos{macos_v[0]}{macos_v[1]}"
        return new("macos", arch, macos=macos_v or DEFAULT_MACOS, platform_label=label)
    return new("windows", arch, platform_label=label)


def _manylinux_platforms(arch: str, glibc: tuple[int, int]) -> list[str]:
    """PEP 600 tags from the target glibc down, with PEP 513/571/599 aliases in place."""
    out: list[str] = []
    major, minor = glibc
    low = _MIN_GLIBC.get(arch, 17)
    for m in range(minor, low - 1, -1):
        out.append(f"manylinux_{major}_{m}_{arch}")
        legacy = _LEGACY_MANYLINUX.get((major, m))
        if (legacy and arch in _LEGACY_ARCHS
                and (legacy == "manylinux2014" or arch in ("x86_64", "i686"))):
            out.append(f"{legacy}_{arch}")
    return out


def platform_tags(target: Target) -> list[str]:
    """Wheel platform tags the target accepts, most specific first."""
    if target.os == "windows":
        return [_WIN_TAG[target.arch]]
    if target.os == "macos":
        version = target.macos or DEFAULT_MACOS
        arch = "arm64" if target.arch == "universal2" else target.arch
        return list(tags.mac_platforms(version=version, arch=arch))
    # packaging.tags order since 26.3 (pypa/packaging#160; the lock half's floor and the kit's
    # vendored copy): the plain linux tag first, then manylinux (or musllinux).  Older packaging,
    # and so pip <= 26.0 (the last pip for Python 3.9), put the plain linux tag last.
    out = [f"linux_{target.arch}"]
    if target.musl is not None:
        major, minor = target.musl
        out += [f"musllinux_{major}_{m}_{target.arch}" for m in range(minor, -1, -1)]
    else:
        out += _manylinux_platforms(target.arch, target.glibc or DEFAULT_GLIBC)
    return out


def tag_ladder(target: Target) -> list[tags.Tag]:
    """The full ordered list of wheel tags a CPython on *target* accepts (PEP 425), best first."""
    if target.captured_tags is not None:
        return [t for s in target.captured_tags for t in tags.parse_tag(s)]
    plats = platform_tags(target)
    interp = f"cp{target.python[0]}{target.python[1]}"
    ladder = list(tags.cpython_tags(python_version=target.python, abis=[interp], platforms=plats))
    ladder += list(tags.compatible_tags(python_version=target.python, interpreter=interp, platforms=plats))
    return ladder


def marker_environment(target: Target) -> dict[str, str]:
    """A COMPLETE PEP 508 environment for *target*: every key, none taken from the host."""
    if target.captured_markers is not None:
        return dict(target.captured_markers)
    os_name, sys_platform, system = {
        "linux": ("posix", "linux", "Linux"),
        "windows": ("nt", "win32", "Windows"),
        "macos": ("posix", "darwin", "Darwin"),
    }[target.os]
    env = {
        "implementation_name": "cpython",
        "implementation_version": target.python_full_version,
        "os_name": os_name,
        "platform_machine": _MACHINE.get((target.os, target.arch), target.arch),
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": system,
        "platform_version": "",
        "python_full_version": target.python_full_version,
        "python_version": target.python_version,
        "sys_platform": sys_platform,
    }
    # Keep in step with whatever keys this packaging version evaluates.
    missing = set(default_environment()) - set(env)
    if missing:  # pragma: no cover - only on a packaging release with new keys
        raise TargetError(f"marker environment lacks keys {sorted(missing)}; update wheelferry")
    return env


def evaluation_environment(target: Target, extra: str = "") -> dict[str, str]:
    """The marker environment plus ``extra``, ready for ``Marker.evaluate``."""
    env = marker_environment(target)
    env["extra"] = extra
    return env


def host_musl(executable: str) -> tuple[int, int] | None:
    """The musl version *executable* runs on, by packaging's own detection; None if it is not musl.

    packaging reads the ELF's program interpreter (``PT_INTERP``) and, when that is
    musl's loader, runs it for its version banner: the same answer pip's tags get.
    """
    from packaging import _musllinux

    found = _musllinux._get_musl_version(executable)
    return None if found is None else (found.major, found.minor)


def host_target(variant: str = "cpu", *, glibc: str | None = None, macos: str | None = None,
                executable: str | None = None) -> Target:
    """The target describing this interpreter, or *executable* (used only by the CLI, at the edge)."""
    machine = _platform.machine().lower()
    py = f"{sys.version_info[0]}.{sys.version_info[1]}.{sys.version_info[2]}"
    if sys.platform.startswith("linux"):
        libc, version = _platform.libc_ver()
        arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
        musl = host_musl(executable or sys.executable)
        if musl is not None:  # Alpine and the like: musllinux tags, never manylinux (glibc) ones
            plat, glibc = f"musllinux_{musl[0]}_{musl[1]}_{arch}", None
        else:
            if libc == "glibc" and version and glibc is None:
                glibc = ".".join(version.split(".")[:2])
            plat = f"linux-{arch}"
    elif sys.platform == "win32":
        plat = f"windows-{ {'x86_64': 'amd64', 'aarch64': 'arm64'}.get(machine, machine) }".replace(" ", "")
    elif sys.platform == "darwin":
        plat = f"macos-{ {'aarch64': 'arm64', 'amd64': 'x86_64'}.get(machine, machine) }".replace(" ", "")
        if macos is None:
            release = _platform.mac_ver()[0]
            macos = ".".join((release.split(".") + ["0"])[:2]) if release else None
    else:
        raise TargetError(f"this host ({sys.platform}) is not a known target; pass --target")
    return replace(parse_target(f"{plat}:{py}:{variant}", glibc=glibc, macos=macos), probed=True)


def target_from_capture(data: Mapping[str, object], name: str) -> Target:
    """A target from a host capture (probe or pex complete-platform JSON)."""
    markers = data.get("marker_environment")
    compat = data.get("compatible_tags")
    if not isinstance(markers, dict) or not isinstance(compat, list) or not compat:
        raise TargetError(
            f"capture {name!r} lacks 'marker_environment' (object) and 'compatible_tags' (list)"
        )
    required = set(default_environment()) - {"extra"}
    absent = sorted(required - set(markers))
    if absent:
        raise TargetError(f"capture {name!r}: marker_environment lacks {', '.join(absent)}")
    if not all(isinstance(t, str) for t in compat):
        raise TargetError(f"capture {name!r}: compatible_tags must be strings like cp311-cp311-win_amd64")
    try:
        parsed = [t for s in compat for t in tags.parse_tag(s)]
    except ValueError as exc:
        raise TargetError(f"capture {name!r}: bad tag: {exc}") from None
    if not parsed:
        raise TargetError(f"capture {name!r}: compatible_tags is empty")
    pyver = str(markers["python_version"])
    m = _PY_RE.match(pyver)
    if not m:
        raise TargetError(f"capture {name!r}: python_version {pyver!r} is not like 3.11")
    full = str(markers.get("python_full_version", pyver + ".0"))
    patch_m = re.match(r"^\d+\.\d+\.(\d+)", full)
    system = str(markers["platform_system"])
    os_name = {"Linux": "linux", "Windows": "windows", "Darwin": "macos"}.get(system, system.lower())
    variant = str(data.get("variant", "cpu"))
    if variant not in VARIANTS:
        raise TargetError(f"capture {name!r}: variant {variant!r} is not one of {', '.join(VARIANTS)}")
    return Target(
        os=os_name,
        arch=str(markers["platform_machine"]).lower(),
        python=(int(m.group(1)), int(m.group(2))),
        python_patch=int(patch_m.group(1)) if patch_m else 0,
        patch_given=patch_m is not None,
        variant=variant,
        platform_label=_safe_id(name),
        captured_tags=tuple(str(t) for t in compat),
        captured_markers=tuple(sorted((str(k), str(v)) for k, v in markers.items() if k != "extra")),
        captured_name=name,
        probed=True,
    )
