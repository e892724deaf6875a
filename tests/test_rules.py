"""Package rules as data: parsing, matching by target and release, actions."""

from __future__ import annotations

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from wheelferry.errors import RuleError, UsageError
from wheelferry.rules import apply_rules, load_rules, parse_rules
from wheelferry.target import parse_target

DOC = {"rule": [
    {"id": "gpu-extra", "package": "TensorFlow", "versions": ">=2.14", "action": "add-extra",
     "extra": "and-cuda", "when": {"variant": "gpu", "os": ["linux"], "arch": ["x86_64"]},
     "reason": "CUDA wheels come through the and-cuda extra", "source": "release notes"},
    {"id": "gpu-windows", "package": "tensorflow", "action": "error",
     "when": {"variant": "gpu", "os": ["windows", "macos"]},
     "message": "no GPU build of {package} {version} for {target}", "reason": "r", "source": "s"},
    {"id": "py", "package": "tensorflow", "action": "python-range",
     "python": {"2.15": ["3.9", "3.10", "3.11"]}, "reason": "r", "source": "s"},
    {"id": "old-gpu", "package": "tensorflow", "versions": "<2.14", "action": "note",
     "when": {"variant": "gpu", "os": "linux"}, "message": "{package} {version} uses system CUDA",
     "reason": "r", "source": "s"},
]}
RULES = parse_rules(DOC, "test")


def _apply(req: str, target: str, version: str | None) -> tuple[list[str], tuple[str, ...]]:
    out = apply_rules([Requirement(req)], parse_target(target), RULES,
                      lambda r: Version(version) if version else None)
    return [str(r) for r in out.requirements], out.notes


def test_gpu_adds_extra_on_linux_x86_64_only_for_new_releases() -> None:
    reqs, notes = _apply("tensorflow==2.20.0", "linux-x86_64:3.11:gpu", "2.20.0")
    assert reqs == ["tensorflow[and-cuda]==2.20.0"] and notes
    reqs, notes = _apply("tensorflow==2.13.0", "linux-x86_64:3.11:gpu", "2.13.0")
    assert reqs == ["tensorflow==2.13.0"] and "system CUDA" in notes[0]
    assert _apply("tensorflow==2.20.0", "linux-x86_64:3.11:cpu", "2.20.0")[0] == ["tensorflow==2.20.0"]


def test_gpu_on_windows_is_refused_with_the_rules_message() -> None:
    with pytest.raises(RuleError, match="no GPU build of tensorflow 2.20.0 for windows-amd64-cp311-gpu"):
        _apply("tensorflow==2.20.0", "windows-amd64:3.11:gpu", "2.20.0")


def test_python_outside_range_lists_supported() -> None:
    with pytest.raises(RuleError, match=r"supports Python 3\.9, 3\.10, 3\.11; target .* has Python 3\.12"):
        _apply("tensorflow==2.15.0", "linux-x86_64:3.12", "2.15.0")
    assert _apply("tensorflow==2.15.0", "linux-x86_64:3.11", "2.15.0")[0] == ["tensorflow==2.15.0"]


def test_other_packages_untouched() -> None:
    assert _apply("numpy", "windows-amd64:3.11:gpu", "2.0")[0] == ["numpy"]


def test_bad_rules_file_reports_each_rule() -> None:
    with pytest.raises(UsageError, match=r"rule\[0\].*rule\[1\]"):
        parse_rules({"rule": [{"id": "x"}, {"id": "y", "package": "p", "action": "explode",
                                            "reason": "r", "source": "s"}]}, "bad")


def test_shipped_rules_load_and_each_has_reason_and_source() -> None:
    rules = load_rules()
    assert rules
    assert all(r.reason and r.source for r in rules)
