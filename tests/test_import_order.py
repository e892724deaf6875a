"""Every module imports only modules before it in the order docs/ARCHITECTURE.md documents."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "wheelferry"
DOC = ROOT / "docs" / "ARCHITECTURE.md"


def _documented() -> tuple[list[str], dict[tuple[str, str], str]]:
    """The documented order and its exceptions ``(importer, imported) -> why``."""
    section = DOC.read_text(encoding="utf-8").split("## Import order", 1)[1]
    blocks = re.findall(r"```text\n(.*?)```", section, re.S)
    order = blocks[0].split()
    exceptions = {}
    for line in blocks[1].splitlines():
        m = re.match(r"\s*(\S+) -> (\S+)\s+(.+)", line)
        if m:
            exceptions[(m[1], m[2])] = m[3]
    return order, exceptions


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts) or "wheelferry"


def _imports(path: Path, modules: set[str]) -> set[tuple[str, int]]:
    """The wheelferry modules *path* imports anywhere in it, with the line of each."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            if name == "wheelferry" or name.startswith("wheelferry."):
                short = name.removeprefix("wheelferry.") if name != "wheelferry" else "wheelferry"
                if short in modules:  # a module, not a name imported from one
                    found.add((short, node.lineno))
    return found


def _sources() -> dict[str, Path]:
    return {_module(p): p for p in sorted(PACKAGE.rglob("*.py")) if "_vendor" not in p.parts}


def test_every_module_has_its_place_in_the_documented_order() -> None:
    order, _ = _documented()
    missing = sorted(set(_sources()) - set(order))
    assert not missing, f"add {', '.join(missing)} to the import order in docs/ARCHITECTURE.md"
    gone = sorted(set(order) - set(_sources()))
    assert not gone, f"docs/ARCHITECTURE.md lists modules that do not exist: {', '.join(gone)}"
    assert len(order) == len(set(order)), "a module is listed twice in the import order"


def test_no_module_imports_against_the_documented_order() -> None:
    order, exceptions = _documented()
    rank = {m: i for i, m in enumerate(order)}
    sources = _sources()
    against, used = [], set()
    for module, path in sources.items():
        for imported, line in sorted(_imports(path, set(sources))):
            if imported == module or rank.get(imported, -1) < rank.get(module, len(order)):
                continue
            if (module, imported) in exceptions:
                used.add((module, imported))
            else:
                against.append(f"{path.relative_to(ROOT)}:{line}: {module} imports {imported}, listed after it")
    assert not against, "\n".join(against)
    stale = sorted(set(exceptions) - used)
    assert not stale, f"documented exceptions no longer in the code: {stale}"


def test_the_check_sees_an_import_against_the_order(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("import json\n\ndef f():\n    from wheelferry.offline import verify\n"
                     "    from wheelferry.lock import write_lock_dir\n")
    assert _imports(probe, {"offline", "offline.verify", "lock"}) == {
        ("offline", 4), ("offline.verify", 4), ("lock", 5)}
