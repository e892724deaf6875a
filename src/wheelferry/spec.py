"""Specs: what to lock (a manifest TOML, or `-r` requirements and requirement files)."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from wheelferry.errors import SpecError
from wheelferry.jsontypes import JSONObject

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_KNOWN_KEYS = {"name", "requirements", "targets", "exclude", "index", "install", "glibc", "macos"}


@dataclass(frozen=True)
class Spec:
    """A requirement set to carry, the targets it is for, and where to find it."""

    name: str
    requirements: tuple[str, ...]
    targets: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    smoke: tuple[str, ...] = ()
    glibc: str | None = None
    macos: str | None = None
    base_dir: Path | None = field(default=None, compare=False)

    def parsed_requirements(self) -> list[Requirement]:
        return [Requirement(r) for r in self.requirements]

    def with_overrides(self, *, exclude: tuple[str, ...] = (), glibc: str | None = None,
                       macos: str | None = None) -> Spec:
        """This spec with each command-line value given (not None, not empty) in place of its own."""
        return replace(self, exclude=exclude or self.exclude, glibc=self.glibc if glibc is None else glibc,
                       macos=self.macos if macos is None else macos)


def parse_requirement(text: str, where: str) -> Requirement:
    """Parse one PEP 508 requirement; URL requirements are refused (binary wheels from an index only)."""
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        raise SpecError(f"{where}: {text!r} is not a valid requirement: {exc}",
                        hint="write requirements as in pip, e.g. tensorflow==2.20.0 or numpy>=1.26") from None
    if req.url:
        raise SpecError(f"{where}: {text!r} is a direct URL requirement; wheelferry locks from indexes only")
    return req


def _check_names(values: Iterable[str], where: str) -> tuple[str, ...]:
    out = []
    for v in values:
        if not isinstance(v, str) or not _NAME.match(v):
            raise SpecError(f"{where}: {v!r} is not a package name")
        out.append(str(canonicalize_name(v)))
    return tuple(out)


def _str_list(data: JSONObject, key: str, where: str) -> tuple[str, ...]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SpecError(f"{where}: '{key}' must be a list of strings")
    return tuple(value)


def load_spec(path: Path) -> Spec:
    """Read and check a spec TOML (``manifests/NAME.toml``); every mistake is a SpecError."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError(f"cannot read spec {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path} is not valid TOML: {exc}") from None
    where = str(path)
    unknown = sorted(set(data) - _KNOWN_KEYS)
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {', '.join(unknown)}",
                        hint=f"known keys: {', '.join(sorted(_KNOWN_KEYS))}")
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not _NAME.match(name):
        raise SpecError(f"{where}: 'name' must be a plain name (letters, digits, . _ -)")
    reqs = _str_list(data, "requirements", where)
    if not reqs:
        raise SpecError(f"{where}: 'requirements' is empty; nothing to lock")
    for r in reqs:
        parse_requirement(r, where)
    index = data.get("index", {})
    install = data.get("install", {})
    if not isinstance(index, dict) or not isinstance(install, dict):
        raise SpecError(f"{where}: [index] and [install] must be tables")
    url = index.get("url")
    if url is not None and not isinstance(url, str):
        raise SpecError(f"{where}: index.url must be a string")
    for key in ("glibc", "macos"):
        if key in data and not isinstance(data[key], str):
            raise SpecError(f"{where}: '{key}' must be a string like \"2.17\"")
    return Spec(
        name=name,
        requirements=reqs,
        targets=_str_list(data, "targets", where),
        exclude=_check_names(_str_list(data, "exclude", where), where),
        index_url=url,
        extra_index_urls=_str_list(index, "extra", f"{where} [index]"),
        find_links=_str_list(index, "find-links", f"{where} [index]"),
        smoke=_str_list(install, "smoke", f"{where} [install]"),
        glibc=data.get("glibc"),
        macos=data.get("macos"),
        base_dir=path.parent,
    )


def is_requirements_file(arg: str) -> bool:
    """`-r` takes a file when it names an existing path or ends in .txt/.in (as pip users expect)."""
    return Path(arg).is_file() or arg.endswith((".txt", ".in"))


def read_requirements_file(path: Path, _seen: frozenset[Path] = frozenset()) -> list[str]:
    """Requirement lines of a pip requirements file (comments, continuations, nested -r)."""
    path = path.resolve()
    if path in _seen:
        raise SpecError(f"{path} includes itself through -r")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read requirements file {path}: {exc.strerror}") from None
    out: list[str] = []
    logical = re.sub(r"\\\n", " ", text)
    for n, line in enumerate(logical.splitlines(), 1):
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        if not line:
            continue
        where = f"{path}:{n}"
        if line.startswith(("-r ", "--requirement ", "-c ", "--constraint ")):
            if line.startswith(("-c", "--constraint")):
                raise SpecError(f"{where}: constraint files are not supported; pin in the requirements")
            nested = line.split(None, 1)[1].strip()
            out += read_requirements_file(path.parent / nested, _seen | {path})
            continue
        if line.startswith("-"):
            raise SpecError(f"{where}: option {line.split()[0]!r} is not supported in a requirements file",
                            hint="set indexes with --index-url / --extra-index-url / --find-links")
        req_text = line.split(" --hash")[0].strip()
        parse_requirement(req_text, where)
        out.append(req_text)
    return out


def expand_requirement_args(args: Iterable[str]) -> list[str]:
    """Turn each `-r` value into requirements: a PEP 508 string or a requirements file."""
    out: list[str] = []
    for arg in args:
        if is_requirements_file(arg):
            out += read_requirements_file(Path(arg))
        else:
            parse_requirement(arg, "-r")
            out.append(arg)
    if not out:
        raise SpecError("no requirements given", hint="pass SPEC.toml or -r REQUIREMENT")
    return out


def spec_from_requirements(requirements: list[str], name: str | None = None) -> Spec:
    """A spec for `lock -r ...`: named after the first requirement unless --name says otherwise."""
    first = Requirement(requirements[0]).name if requirements else "bundle"
    return Spec(name=name or canonicalize_name(first), requirements=tuple(requirements))
