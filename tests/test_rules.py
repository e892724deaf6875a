"""Package rules as data: parsing, matching by target and release, actions."""

from __future__ import annotations

from dataclasses import replace

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from wheelferry.errors import RuleError, UsageError
from wheelferry.rules import apply_rules, load_rules, parse_rules
from wheelferry.target import Target, parse_target

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


def _apply(req: str, target: str | Target, version: str | None,
           releases: tuple[str, ...] = ()) -> tuple[list[str], tuple[str, ...]]:
    """Apply RULES; the index has *releases* (newest first), or just *version*."""
    listed = [Version(v) for v in releases] or ([Version(version)] if version else [])
    out = apply_rules([Requirement(req)], parse_target(target) if isinstance(target, str) else target,
                      RULES, lambda r: [v for v in listed if r.specifier.contains(v, prereleases=True)])
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


def test_python_range_narrows_the_releases_and_refuses_only_a_contradicting_pin() -> None:
    doc = {"rule": [{"id": "py", "package": "tensorflow", "action": "python-range", "reason": "r",
                     "source": "s", "python": {"2.20": ["3.9", "3.10"], "2.21": ["3.10", "3.11"]}},
                    {"id": "n", "package": "tensorflow", "action": "note", "message": "{version} chosen",
                     "reason": "r", "source": "s"}]}
    rules = parse_rules(doc, "test")
    listed = [Version("2.21.0"), Version("2.20.0")]
    target = parse_target("windows-amd64:3.9")

    def releases(r: Requirement) -> list[Version]:
        return [v for v in listed if r.specifier.contains(v)]

    out = apply_rules([Requirement("tensorflow")], target, rules, releases)
    assert out.notes == ("n: 2.20.0 chosen",), "judged on the newest release left, not 2.21.0"
    ok = out.release_ok["tensorflow"]
    assert not ok(Version("2.21.0")) and ok(Version("2.20.0")) and ok(Version("2.22.0")), \
        "a series the rule does not list is not narrowed"
    with pytest.raises(RuleError) as exc:
        apply_rules([Requirement("tensorflow==2.21.0")], target, rules, releases)
    assert str(exc.value) == ("tensorflow 2.21.0 supports Python 3.10, 3.11; "
                              "target windows-amd64-cp39-cpu has Python 3.9")
    assert exc.value.hint == ("ask for tensorflow==2.20.0, the newest release for Python 3.9; or choose a "
                              "target with one of those Pythons (rule py: s)")
    with pytest.raises(RuleError, match=r"tensorflow>=2\.21 leaves no release with wheels for it"):
        apply_rules([Requirement("tensorflow>=2.21")], target, rules, releases)
    # For this host (or a capture of a real one), another target is no way out.
    with pytest.raises(RuleError) as exc:
        apply_rules([Requirement("tensorflow==2.21.0")], replace(target, probed=True), rules, releases)
    assert exc.value.hint == "ask for tensorflow==2.20.0, the newest release for Python 3.9 (rule py: s)"


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
