"""Every module imports only modules before it in the order docs/ARCHITECTURE.md documents."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "wheelferry"
DOC = ROOT / "docs" / "ARCHITECTURE.md"


def _documented() -> list[str]:
    """The documented order: the first ``text`` block of the "Import order" section."""
    section = DOC.read_text(encoding="utf-8").split("## Import order", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```text\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the import order section has one list and no exceptions"
    return blocks[0].split()


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
    order = _documented()
    missing = sorted(set(_sources()) - set(order))
    assert not missing, f"add {', '.join(missing)} to the import order in docs/ARCHITECTURE.md"
    gone = sorted(set(order) - set(_sources()))
    assert not gone, f"docs/ARCHITECTURE.md lists modules that do not exist: {', '.join(gone)}"
    assert len(order) == len(set(order)), "a module is listed twice in the import order"


def _against(sources: dict[str, Path], order: list[str]) -> list[str]:
    rank = {m: i for i, m in enumerate(order)}
    against = []
    for module, path in sources.items():
        for imported, line in sorted(_imports(path, set(sources))):
            if imported != module and rank.get(imported, -1) >= rank.get(module, len(order)):
                against.append(f"{path}:{line}: {module} imports {imported}, listed after it")
    return against


def test_no_module_imports_against_the_documented_order() -> None:
    """No exception: an import inside a function counts the same as one at the top."""
    against = _against(_sources(), _documented())
    assert not against, "\n".join(against)


def test_the_check_sees_an_import_against_the_order(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("import json\n\ndef f():\n    from wheelferry.offline import verify\n"
                     "    from wheelferry.lock import write_lock_dir\n")
    assert _imports(probe, {"offline", "offline.verify", "lock"}) == {
        ("offline", 4), ("offline.verify", 4), ("lock", 5)}


def test_a_function_level_import_against_the_order_fails(tmp_path: Path) -> None:
    low, high = tmp_path / "low.py", tmp_path / "high.py"
    low.write_text("def f():\n    from wheelferry.high import g\n    return g\n")
    high.write_text("from wheelferry.low import f\n")
    sources = {"low": low, "high": high}
    assert _against(sources, ["low", "high"]) == [f"{low}:2: low imports high, listed after it"]
    assert _against(sources, ["high", "low"]) == [f"{high}:1: high imports low, listed after it"]
