"""Why a resolution failed, in words: who asked for what, and what the index really has.

resolvelib reports an impossible resolution as data (``ResolutionImpossible.causes``);
this module turns it into one readable error at the edge, judged for the target.  The
cases, in the order they are told apart for each project named in the causes: no such
project, a conflict between named requirements, no such version, only yanked releases,
and no wheel for the target.
"""

from __future__ import annotations

from collections.abc import Sequence

from packaging.specifiers import SpecifierSet
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion, Version
from resolvelib.resolvers import RequirementInformation, ResolutionImpossible

from wheelferry.errors import (
    ConflictError,
    NoSuchProjectError,
    NoSuchVersionError,
    NoWheelError,
    ResolutionError,
)
from wheelferry.finder import PYTHON, Candidate, Finder, Req
from wheelferry.pages import DistFile
from wheelferry.target import Target, tag_ladder

Info = RequirementInformation[Req, Candidate]


def explain_impossible(exc: ResolutionImpossible[Req, Candidate], finder: Finder) -> ResolutionError:
    """Turn resolvelib's causes into a short readable explanation."""
    by_name: dict[str, list[Info]] = {}
    for info in exc.causes:
        if isinstance(info.requirement, Req):
            by_name.setdefault(info.requirement.name, []).append(info)
    for name, infos in by_name.items():
        if name != PYTHON:
            found = _explain_project(name, infos, finder)
            if found is not None:
                return found
    parts = [f"{name}: " + "; ".join(sorted({_asked(i, finder.target) for i in infos}))
             for name, infos in sorted(by_name.items())]
    return ResolutionError(
        f"no set of versions fits target {finder.target.id}: " + " | ".join(parts),
        hint="relax a pin, or use --exclude for a package the target does not need",
    )


def _explain_project(name: str, infos: Sequence[Info], finder: Finder) -> ResolutionError | None:
    """The one reason *name* has no candidate, or None when it has some (the cause is elsewhere)."""
    files = finder.index.files(name)
    if not files:
        who = "; ".join(sorted({_asked(i, finder.target) for i in infos}))
        return NoSuchProjectError(
            f"no such project: {name} ({who}): no index or find-links location has any file of it",
            hint="check the spelling, or name the index that serves it (--index-url, "
                 "--extra-index-url, --find-links)")
    spec = SpecifierSet()
    for info in infos:
        spec &= info.requirement.specifier
    wheels = finder.best_wheels(name)
    if any(spec.contains(v, prereleases=True) and not yanked for v, (_, yanked) in wheels.items()):
        return None
    asks = {(i.requirement.text, _parent(i)): i for i in infos}
    if len({i.requirement.specifier for i in asks.values()}) > 1:
        return _conflict(name, list(asks.values()), wheels, finder.target)
    said = "; ".join(sorted(_asked(i, finder.target) for i in asks.values()))
    releases = sorted({v for f in files if (v := _version_of(f)) is not None})
    if not any(spec.contains(v, prereleases=True) for v in releases):
        return NoSuchVersionError(
            f"{said}: no such version ({_nearest(spec, releases)})",
            hint=f"ask for a release {name} has")
    yanked = [(v, d.yanked) for v, (d, y) in wheels.items() if y and spec.contains(v, prereleases=True)]
    if yanked:
        listed = ", ".join(f"{v} (reason: {r!r})" if r else str(v) for v, r in yanked)
        return ResolutionError(
            f"{said}: the only matching releases for target {finder.target.id} "
            f"are yanked: {listed}",
            hint="pin one with == to take it anyway (pip and uv do so too), or relax the range")
    return no_wheel_error(name, spec, finder)


def _conflict(name: str, asks: list[Info], wheels: dict[Version, tuple[DistFile, bool]],
              target: Target) -> ConflictError:
    said = "; ".join(sorted(_asked(i, target) for i in asks))
    have = [str(v) for v, (_, yanked) in wheels.items() if not yanked]
    shown = ", ".join(have[:5]) + (f" (+{len(have) - 5} more)" if len(have) > 5 else "")
    return ConflictError(
        f"conflicting requirements on {name} for target {target.id}: {said}; no release satisfies "
        f"all of them (releases with a wheel for the target: {shown or 'none'})",
        hint="change one of these requirements (or pin its parent to a release that agrees)")


def _parent(info: Info) -> str | None:
    return None if info.parent is None else f"{info.parent.name} {info.parent.version}"


def _asked(info: Info, target: Target) -> str:
    """``left 1.0 needs shared<1``, ``shared==1.0 was requested``, Python's own wording."""
    req = info.requirement
    text = req.text
    if req.name == PYTHON:
        text = f"Python {req.specifier} (target has {target.python_full_version})"
    parent = _parent(info)
    if parent is None:
        return f"{text} was requested"
    if parent.split(" ")[0] == req.name:
        return f"{text} (for its extras)"
    return f"{parent} needs {text}"


def _nearest(spec: SpecifierSet, releases: list[Version]) -> str:
    """The releases around the one asked for, and the newest: ``nearest: 2.31.0, 2.32.3; newest: 2.32.3``."""
    if not releases:
        return "the index lists no release with a valid version"
    finals = [v for v in releases if not v.is_prerelease] or releases
    newest = finals[-1]
    pivot: Version | None = None
    for s in spec:
        try:
            pivot = Version(s.version.rstrip(".*"))
            break
        except InvalidVersion:
            continue
    if pivot is None:
        return f"newest: {newest}"
    below = [v for v in finals if v < pivot][-2:]
    above = [v for v in finals if v > pivot][:2]
    near = below + above
    if not above or near == [newest]:
        return f"newest: {newest}"
    return f"nearest: {', '.join(map(str, near))}; newest: {newest}"


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
    target = finder.target
    head = (f"no wheel of {name} ({rng}) for target {target.id} "
            f"(Python {target.python_version}, {target.platform_label})")
    by_python = _python_excluded(name, spec, finder)
    if by_python is not None:
        said, newest = by_python
        if newest is None:
            hint = "lock for a Python these releases support" if not target.probed else \
                "run wheelferry with a Python these releases support, or --exclude it"
        else:
            hint = f"ask for {name}=={newest}, or relax the range to take it"
            hint += ", or --exclude it" if target.probed else ", or lock for another Python"
        return NoWheelError(f"{head}: {said}", hint=hint)
    # For this host (or a capture of a real one) another target is no way out.
    other = "choose another version, or --exclude it" if target.probed else \
        "choose another version or target, or --exclude it"
    return NoWheelError(
        f"{head}: {what}",
        hint=f"wheelferry never builds sdists; {other}",
    )


def _python_excluded(name: str, spec: SpecifierSet, finder: Finder) -> tuple[str, Version | None] | None:
    """When Requires-Python, not the tags, shut out every wheel in *spec*: say so, and name the
    newest release that allows the target's Python (as pip and uv do).  None otherwise."""
    # Wheels for the target's platform, whatever their Python tag: a project that dropped the
    # target's Python has no cp39 wheel either, yet Requires-Python is the reason to name.
    platforms = {t.platform for t in tag_ladder(finder.target)}
    fitting = [f for f in finder.index.files(name)
               if _file_version_in(f, spec) and f.yanked is None and _platform_fits(f, platforms)]
    if not fitting or any(finder.python_ok(f.requires_python) for f in fitting):
        return None
    plat = finder.target.platform_label
    needs: dict[str, set[Version]] = {}
    for f in fitting:
        needs.setdefault(str(f.requires_python), set()).add(f.version)
    if len(needs) == 1:
        said = f"every release with a wheel for {plat} requires Python {next(iter(needs))}"
    else:
        ordered = sorted(needs.items(), key=lambda kv: min(kv[1]))
        said = f"every release with a wheel for {plat} requires another Python: " + ", ".join(
            f"{rp} ({_span(sorted(vs))})" for rp, vs in ordered)
    py = finder.target.python_version
    allowed: dict[Version, list[DistFile]] = {}
    for f in finder.index.files(name):
        v = _version_of(f)
        if v is not None and not v.is_prerelease and f.yanked is None and finder.python_ok(f.requires_python):
            allowed.setdefault(v, []).append(f)
    if not allowed:
        return f"{said}; no release allows Python {py}", None
    newest = max(allowed)
    files = allowed[newest]
    notes = []
    if not spec.contains(newest, prereleases=True):
        notes.append(f"outside {spec}")
    wheels = [f for f in files if f.filename.endswith(".whl")]
    fits = any(finder.wheel_rank(f.filename) is not None for f in wheels)
    if not wheels:
        notes.append("sdist only")
    elif not fits:
        notes.append(f"no wheel for {finder.target.platform_label}")
    tail = "".join(f", {n}" for n in notes)
    return f"{said} (newest that allows Python {py}: {name} {newest}{tail})", newest if fits else None


def _platform_fits(dist: DistFile, platforms: set[str]) -> bool:
    if not dist.filename.endswith(".whl"):
        return False
    try:
        tags = parse_wheel_filename(dist.filename)[3]
    except InvalidWheelFilename:
        return False
    return any(t.platform in platforms for t in tags)


def _span(versions: list[Version]) -> str:
    return str(versions[0]) if len(versions) == 1 else f"{versions[0]} to {versions[-1]}"


def _few(items: set[str], n: int = 5) -> str:
    shown = sorted(items)
    return ", ".join(shown[:n]) + (f" (+{len(shown) - n} more)" if len(shown) > n else "")


def _version_of(dist: DistFile) -> Version | None:
    try:
        return dist.version
    except InvalidVersion:
        return None


def _file_version_in(dist: DistFile, spec: SpecifierSet) -> bool:
    version = _version_of(dist)
    return version is not None and spec.contains(version, prereleases=True)
