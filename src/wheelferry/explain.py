"""Why a resolution failed, in words: the conflicting requirements, or the missing wheels.

resolvelib reports an impossible resolution as data (``ResolutionImpossible.causes``);
this module turns it into one readable error at the edge, judged for the target.
"""

from __future__ import annotations

from packaging.specifiers import SpecifierSet
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import Version
from resolvelib.resolvers import ResolutionImpossible

from wheelferry.errors import NoWheelError, ResolutionError
from wheelferry.pages import DistFile
from wheelferry.resolver import PYTHON, Candidate, Finder, Req


def explain_impossible(exc: ResolutionImpossible[Req, Candidate], finder: Finder) -> ResolutionError:
    """Turn resolvelib's causes into a short readable explanation (or a no-wheel error)."""
    by_name: dict[str, list[str]] = {}
    for info in exc.causes:
        req = info.requirement
        if not isinstance(req, Req):
            continue
        parent = info.parent
        who = "requested" if parent is None else f"{parent.name} {parent.version}"
        label = req.text if req.name != PYTHON else f"Python {finder.target.python_full_version} ({req.text})"
        by_name.setdefault(req.name, []).append(f"{label} (from {who})")
    for name in by_name:
        if name == PYTHON:
            continue
        specs = [i.requirement.specifier for i in exc.causes
                 if isinstance(i.requirement, Req) and i.requirement.name == name]
        spec = SpecifierSet()
        for s in specs:
            spec &= s
        wheels = finder.best_wheels(name)
        if not any(spec.contains(v, prereleases=True) for v in wheels):
            return no_wheel_error(name, spec, finder)
    parts = [f"{name}: " + "; ".join(sorted(set(items))) for name, items in sorted(by_name.items())]
    return ResolutionError(
        f"no set of versions fits target {finder.target.id}: " + " | ".join(parts),
        hint="relax a pin, or use --exclude for a package the target does not need",
    )


def no_wheel_error(name: str, spec: SpecifierSet, finder: Finder) -> NoWheelError:
    """Name the package, the range, the target and which files exist for which platforms."""
    files = finder.index.files(name)
    matching = [f for f in files if _file_version_in(f, spec)] or files
    wheels: dict[Version, tuple[set[str], set[str]]] = {}
    sdists = 0
    for f in matching:
        if not f.filename.endswith(".whl"):
            sdists += 1
            continue
        try:
            _, ver, _, tags = parse_wheel_filename(f.filename)
        except InvalidWheelFilename:
            continue
        pythons, platforms = wheels.setdefault(ver, (set(), set()))
        pythons.update(t.interpreter for t in tags)
        platforms.update(t.platform for t in tags)
    if not files:
        what = "the index has no files for it at all"
    else:
        items = [f"{ver} has wheels for {_few(pythons)} on {_few(platforms)}"
                 for ver, (pythons, platforms) in sorted(wheels.items(), reverse=True)[:3]]
        if sdists:
            items.append(f"{sdists} sdist{'s' if sdists > 1 else ''} (never built)"
                         if len(matching) > 1 else f"only the sdist {matching[0].filename} (never built)")
        what = "; ".join(items)
    rng = str(spec) or "any version"
    return NoWheelError(
        f"no wheel of {name} ({rng}) for target {finder.target.id} "
        f"(Python {finder.target.python_version}, {finder.target.platform_label}): {what}",
        hint="wheelferry never builds sdists; choose another version or target, or --exclude it",
    )


def _few(items: set[str], n: int = 5) -> str:
    shown = sorted(items)
    return ", ".join(shown[:n]) + (f" (+{len(shown) - n} more)" if len(shown) > n else "")


def _file_version_in(dist: DistFile, spec: SpecifierSet) -> bool:
    try:
        version = Version(dist.version) if isinstance(dist.version, str) else dist.version
    except Exception:  # noqa: BLE001
        return False
    return version is not None and spec.contains(version, prereleases=True)
