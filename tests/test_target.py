"""Targets: parsing, tag ladders and complete marker environments."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging import tags
from packaging.markers import Marker, default_environment

from wheelferry.errors import TargetError
from wheelferry.target import (
    host_musl,
    host_target,
    marker_environment,
    parse_target,
    platform_tags,
    tag_ladder,
    target_from_capture,
)

PLATFORMS = ["linux-x86_64", "linux-aarch64", "windows-amd64", "windows-arm64", "macos-arm64",
             "macos-x86_64", "manylinux_2_17_x86_64", "manylinux2014_aarch64", "musllinux_1_2_x86_64",
             "win_amd64", "macosx_11_0_arm64"]
targets = st.builds(
    lambda p, minor, v: parse_target(f"{p}:3.{minor}:{v}"),
    st.sampled_from(PLATFORMS), st.integers(min_value=8, max_value=14), st.sampled_from(["cpu", "gpu"]),
)


def test_host_ladder_equals_packaging_sys_tags() -> None:
    assert [str(t) for t in tag_ladder(host_target())] == [str(t) for t in tags.sys_tags()]


def test_host_markers_match_default_environment_except_release_strings() -> None:
    env, host = marker_environment(host_target()), default_environment()
    assert set(env) == set(host) - {"extra"}
    for key in set(host) - {"platform_release", "platform_version", "python_full_version",
                            "implementation_version", "extra"}:
        assert env[key] == host[key], key


@pytest.mark.parametrize("text,tid", [
    ("linux-x86_64:3.11:gpu", "linux-x86_64-cp311-gpu"),
    ("windows-amd64:3.9", "windows-amd64-cp39-cpu"),
    ("macos-arm64:3.12", "macos-arm64-cp312-cpu"),
    ("linux-aarch64:3.10:cpu", "linux-aarch64-cp310-cpu"),
    ("manylinux_2_17_x86_64:3.9", "manylinux_2_17_x86_64-cp39-cpu"),
])
def test_ids_have_no_dots(text: str, tid: str) -> None:
    assert parse_target(text).id == tid


def test_manylinux_tag_means_that_glibc() -> None:
    t = parse_target("manylinux_2_17_x86_64:3.9")
    assert t.glibc == (2, 17)
    plats = platform_tags(t)
    assert "manylinux_2_28_x86_64" not in plats
    assert plats[:3] == ["linux_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]
    assert plats[-1] == "manylinux1_x86_64"


def test_plain_linux_means_glibc_2_28_unless_overridden() -> None:
    assert parse_target("linux-x86_64:3.11").glibc == (2, 28)
    t = parse_target("linux-x86_64:3.11", glibc="2.17")
    assert t.glibc == (2, 17) and "glibc217" in t.id


def test_windows_ladder_and_markers() -> None:
    t = parse_target("windows-amd64:3.10")
    ladder = [str(x) for x in tag_ladder(t)]
    assert ladder[0] == "cp310-cp310-win_amd64"
    assert "cp39-abi3-win_amd64" in ladder and "py3-none-any" in ladder
    assert not any("linux" in x for x in ladder)
    env = marker_environment(t)
    assert env["sys_platform"] == "win32" and env["platform_system"] == "Windows"
    assert env["platform_machine"] == "AMD64" and env["os_name"] == "nt"
    assert Marker('platform_system == "Windows"').evaluate(env)


def test_macos_ladder_has_universal2_and_older_versions() -> None:
    ladder = [str(x) for x in tag_ladder(parse_target("macos-arm64:3.12", macos="14.0"))]
    assert "cp312-cp312-macosx_14_0_arm64" in ladder
    assert "cp312-cp312-macosx_11_0_universal2" in ladder
    assert "cp312-cp312-macosx_15_0_arm64" not in ladder


@pytest.mark.parametrize("bad", ["linux", "linux-x86_64", "plan9-x86_64:3.11", "linux-x86_64:2.7",
                                 "linux-x86_64:3.11:tpu", "linux-x86_64:three", ":3.11", "a:b:c:d"])
def test_bad_targets_are_usage_errors(bad: str) -> None:
    with pytest.raises(TargetError) as exc:
        parse_target(bad)
    assert exc.value.exit_code == 2


@given(targets)
def test_ladder_properties(t) -> None:  # type: ignore[no-untyped-def]
    ladder = tag_ladder(t)
    strs = [str(x) for x in ladder]
    assert len(strs) == len(set(strs)), "no duplicates"
    assert strs[-1].endswith("none-any")
    interp = f"cp{t.python[0]}{t.python[1]}"
    assert strs[0].startswith(f"{interp}-{interp}-")
    # Every binary tag of the ladder names a platform of the target, never the host's by accident.
    plats = set(platform_tags(t)) | {"any"}
    assert {x.platform for x in ladder} <= plats
    # abi3 goes down to cp32 and never above the target's Python.
    abi3 = [x.interpreter for x in ladder if x.abi == "abi3"]
    assert f"cp{t.python[0]}2" in abi3 or t.python < (3, 2)
    assert all(int(i[3:]) <= t.python[1] for i in abi3)


@given(targets)
def test_marker_environment_is_complete_and_never_the_hosts(t) -> None:  # type: ignore[no-untyped-def]
    env = marker_environment(t)
    assert set(default_environment()) - {"extra"} <= set(env)
    assert env["python_version"] == f"3.{t.python[1]}"
    assert env["sys_platform"] == {"linux": "linux", "windows": "win32", "macos": "darwin"}[t.os]
    assert "." not in t.id


def test_capture_target_uses_its_own_tags_and_markers() -> None:
    markers = dict(marker_environment(parse_target("windows-amd64:3.11")))
    capture = {"marker_environment": markers, "compatible_tags": ["cp311-cp311-win_amd64", "py3-none-any"]}
    t = target_from_capture(capture, "factory7")
    assert [str(x) for x in tag_ladder(t)] == ["cp311-cp311-win_amd64", "py3-none-any"]
    assert marker_environment(t) == markers
    assert t.id == "factory7"


def test_capture_missing_keys_is_a_usage_error() -> None:
    with pytest.raises(TargetError, match="lacks"):
        target_from_capture({"marker_environment": {"python_version": "3.11"},
                             "compatible_tags": ["py3-none-any"]}, "x")


def _fake_interpreter(tmp_path: Path, loader: str) -> Path:
    """A 64-bit little-endian ELF whose only program header is PT_INTERP naming *loader*."""
    interp = loader.encode() + b"\0"
    ehdr = struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0, 64, 0, 0, 64, 56, 1, 0, 0, 0)  # program headers at 64
    phdr = struct.pack("<IIQQQQQQ", 3, 4, 64 + 56, 0, 0, len(interp), len(interp), 1)
    exe = tmp_path / "python3"
    exe.write_bytes(b"\x7fELF" + bytes([2, 1, 1]) + bytes(9) + ehdr + phdr + interp)
    return exe


@pytest.mark.skipif(sys.platform != "linux", reason="musl is a Linux C library")
def test_a_musl_host_gets_musllinux_tags(tmp_path: Path) -> None:
    loader = tmp_path / "ld-musl-x86_64.so.1"  # run with no arguments, musl's loader says who it is
    loader.write_text("#!/bin/sh\nprintf 'musl libc (x86_64)\\nVersion 1.2.4\\nDynamic Program Loader\\n' >&2\n")
    loader.chmod(0o755)
    exe = _fake_interpreter(tmp_path, str(loader))
    assert host_musl(str(exe)) == (1, 2)
    t = host_target(executable=str(exe))
    assert (t.musl, t.glibc) == ((1, 2), None)
    ladder = [str(tag) for tag in tag_ladder(t)]
    assert any("musllinux_1_2_" in tag for tag in ladder)
    assert not any("manylinux" in tag for tag in ladder)


@pytest.mark.skipif(sys.platform != "linux", reason="musl is a Linux C library")
def test_a_glibc_loader_is_not_musl(tmp_path: Path) -> None:
    assert host_musl(str(_fake_interpreter(tmp_path, "/lib64/ld-linux-x86-64.so.2"))) is None
    assert host_musl(str(tmp_path / "absent")) is None
