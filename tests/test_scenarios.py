"""Resolver scenarios replayed from real TensorFlow index metadata (tests/data), offline.

The expected sets are what `uv pip compile --python-platform ... --only-binary :all:`
picked for the same requirements and target when the data was recorded.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from packaging.version import Version

from wheelferry.config import IndexConfig
from wheelferry.errors import NoWheelError, ResolutionError, RuleError
from wheelferry.index import IndexClient
from wheelferry.lock import lock_target
from wheelferry.metadata import MetadataSource
from wheelferry.rules import load_rules
from wheelferry.spec import Spec
from wheelferry.target import parse_target

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DATA = Path(__file__).parent / "data"
SCENARIOS = tomllib.loads((DATA / "scenarios.toml").read_text())["scenario"]


def _replay(scenario: dict[str, Any], tmp_path: Path) -> dict[str, str]:
    config = IndexConfig((DATA / "index").as_uri(), (), ())
    session = requests.Session()
    index = IndexClient(config, session)
    metadata = MetadataSource(session, tmp_path / "meta")
    spec = Spec(name="s", requirements=tuple(scenario["requirements"]))
    tl = lock_target(spec, parse_target(scenario["target"]), index, metadata, load_rules())
    return {n: p.version for n, p in tl.resolution.packages.items()}


def test_gpu_on_linux_aarch64_is_refused_with_the_reason(tmp_path: Path, no_network: None) -> None:
    """The recorded aarch64 wheels are CPU builds: a gpu lock would be a CPU set named -gpu."""
    for req in ("tensorflow==2.15.0", "tensorflow"):
        with pytest.raises(RuleError) as exc:
            _replay({"requirements": [req], "target": "linux-aarch64:3.11:gpu"}, tmp_path)
        version = "2.15.0" if "==" in req else "2.21.0"
        assert f"tensorflow {version} has no GPU build for linux-aarch64-cp311-gpu" in str(exc.value)
        assert "aarch64 wheels are CPU builds" in str(exc.value)
        assert "rule tf-gpu-linux-non-x86" in (exc.value.hint or "")
    cpu = _replay({"requirements": ["tensorflow==2.15.0"], "target": "linux-aarch64:3.11:cpu"}, tmp_path)
    assert "tensorflow-cpu-aws" in cpu


def test_a_pin_outside_the_python_range_names_the_newest_release_for_that_python(
        tmp_path: Path, no_network: None) -> None:
    with pytest.raises(RuleError) as exc:
        _replay({"requirements": ["tensorflow==2.21.0"], "target": "linux-x86_64:3.9"}, tmp_path)
    assert str(exc.value) == ("tensorflow 2.21.0 supports Python 3.10, 3.11, 3.12, 3.13; "
                              "target linux-x86_64-cp39-cpu has Python 3.9")
    assert (exc.value.hint or "").startswith("ask for tensorflow==2.20.0, the newest release for Python 3.9")
    # Unpinned, the rule narrows instead: a release for 3.9 is chosen (the newest whose whole
    # tree the recording holds for 3.9), never 2.21.
    got = _replay({"requirements": ["tensorflow"], "target": "linux-x86_64:3.9"}, tmp_path)
    assert Version(got["tensorflow"]) < Version("2.21")


@pytest.mark.parametrize("req,message,hint", [
    ("numpy>=2.1", "every release with a wheel for linux-x86_64 requires another Python: >=3.10 (2.1.0), "
     ">=3.11 (2.4.6) (newest that allows Python 3.9: numpy 2.0.2, outside >=2.1)", "ask for numpy==2.0.2"),
    ("keras>=3.1", "every release with a wheel for linux-x86_64 requires Python >=3.11 "
     "(newest that allows Python 3.9: keras 3.0.0, outside >=3.1)", "ask for keras==3.0.0"),
    ("h5py>=3.15", "every release with a wheel for linux-x86_64 requires Python >=3.10 "
     "(newest that allows Python 3.9: h5py 3.14.0, outside >=3.15)", "ask for h5py==3.14.0"),
])
def test_no_wheel_names_requires_python_when_it_shut_every_wheel_out(
        req: str, message: str, hint: str, tmp_path: Path, no_network: None) -> None:
    """Recorded releases that dropped Python 3.9: the message names Requires-Python, not the tags."""
    with pytest.raises(NoWheelError) as exc:
        _replay({"requirements": [req], "target": "linux-x86_64:3.9"}, tmp_path)
    name = req.split(">")[0]
    assert str(exc.value) == (f"no wheel of {name} ({req[len(name):]}) for target linux-x86_64-cp39-cpu "
                              f"(Python 3.9, linux-x86_64): {message}")
    assert (exc.value.hint or "").startswith(hint) and "sdist" not in (exc.value.hint or "")
    # On a Python those releases allow, the same range locks.
    assert name in _replay({"requirements": [req], "target": "linux-x86_64:3.11"}, tmp_path)


def test_no_wheel_for_the_platform_keeps_the_file_listing(tmp_path: Path, no_network: None) -> None:
    """tensorrt: sdists only, whatever the Python: the tags message, not a Requires-Python one."""
    with pytest.raises(NoWheelError) as exc:
        _replay({"requirements": ["tensorrt==8.6.1.post1"], "target": "linux-x86_64:3.11"}, tmp_path)
    assert "requires Python" not in str(exc.value) and "sdist" in str(exc.value)


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if "expect" in s], ids=lambda s: s["id"])
def test_replayed_lock_equals_uv(scenario: dict[str, Any], tmp_path: Path, no_network: None) -> None:
    got = _replay(scenario, tmp_path)
    want = dict(line.split("==", 1) for line in scenario["expect"])
    assert got == want


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if "uv_error" in s], ids=lambda s: s["id"])
def test_replayed_failures_are_explained(scenario: dict[str, Any], tmp_path: Path, no_network: None) -> None:
    with pytest.raises(ResolutionError) as exc:
        _replay(scenario, tmp_path)
    assert exc.value.exit_code == 1
    # uv names the one release that has no wheel; the message names the same release as sdist-only.
    [unusable] = re.findall(r"Because (\S+) has no usable wheels", scenario["uv_error"])
    assert f"{unusable} (published only as an sdist)" in str(exc.value), str(exc.value)


def test_windows_capture_file_locks_like_the_windows_target(tmp_path: Path, no_network: None) -> None:
    """A hand-written capture of a Windows host gives the same 43 packages as windows-amd64:3.10."""
    import json

    from wheelferry.target import target_from_capture

    capture = json.loads((DATA / "captures" / "windows-amd64-cp310.json").read_text())
    target = target_from_capture(capture, capture["name"])
    config = IndexConfig((DATA / "index").as_uri(), (), ())
    session = requests.Session()
    index, metadata = IndexClient(config, session), MetadataSource(session, tmp_path / "meta")
    spec = Spec(name="s", requirements=("tensorflow==2.15.0",))
    by_capture = lock_target(spec, target, index, metadata, load_rules()).resolution.packages
    by_string = lock_target(spec, parse_target("windows-amd64:3.10"), index, metadata,
                            load_rules()).resolution.packages
    assert {n: p.version for n, p in by_capture.items()} == {n: p.version for n, p in by_string.items()}
    assert len(by_capture) == 43 and "tensorflow-intel" in by_capture
    assert {p.dist.filename for p in by_capture.values()} == {p.dist.filename for p in by_string.values()}
