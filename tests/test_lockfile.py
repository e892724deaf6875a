"""The canonical lock record: deterministic JSON, round trips, validation with locations."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wheelferry.errors import LockFileError
from wheelferry.lockfile import (
    Edge,
    Lock,
    LockedPackage,
    LockedTarget,
    RemovedPackage,
    SpecRecord,
    TrimmedEdge,
    WheelFile,
    loads_lock,
)

names = st.from_regex(r"[a-z][a-z0-9]{0,4}(-[a-z0-9]{1,4}){0,2}", fullmatch=True)  # valid project names
versions = st.from_regex(r"[0-9]{1,2}\.[0-9]{1,2}(\.[0-9])?", fullmatch=True)
shas = st.from_regex(r"[0-9a-f]{64}", fullmatch=True)


@st.composite
def locks(draw: st.DrawFn) -> Lock:
    pkgs = draw(st.dictionaries(names, st.tuples(versions, shas, st.integers(0, 10**9)), min_size=1, max_size=6))
    wheels = {f"{n.replace('-', '_')}-{v}-py3-none-any.whl": WheelFile(
        f"{n.replace('-', '_')}-{v}-py3-none-any.whl", sha, size,
        (f"https://mirror.example/files/{n}-{v}.whl",), draw(st.none() | st.just(">=3.9")),
        draw(st.none() | st.just("2024-01-02T03:04:05.000006Z"))) for n, (v, sha, size) in pkgs.items()}
    packages = tuple(LockedPackage(n, v, f"{n.replace('-', '_')}-{v}-py3-none-any.whl",
                                   (Edge(None, n),), (), ()) for n, (v, _, _) in pkgs.items())
    target = LockedTarget("linux-x86_64-cp311-cpu", "linux-x86_64:3.11:cpu", {"os": "linux"},
                          {"python_version": "3.11"}, tuple(pkgs), packages,
                          (TrimmedEdge("a", "b>1", "excluded"),), (RemovedPackage("b", "2", 10, ("a",)),),
                          ("note",))
    return Lock(SpecRecord("x", tuple(pkgs), ("linux-x86_64:3.11:cpu",), ("b",), ("python -c 1",)),
                ("https://mirror.example/simple",), (target,), wheels, "wheelferry test")


@given(locks())
def test_round_trip_is_identity_and_bytes_stable(lock: Lock) -> None:
    text = lock.dumps()
    again = loads_lock(text)
    assert again.dumps() == text
    assert again.target_ids == lock.target_ids
    assert set(again.wheels) == set(lock.wheels)


def _sample() -> dict:  # type: ignore[type-arg]
    sha = "a" * 64
    lock = Lock(SpecRecord("x", ("six",), ("t",)), (), (LockedTarget(
        "t", "t", {}, {}, ("six",), (LockedPackage("six", "1.0", "six-1.0-py3-none-any.whl", ()),)),),
        {"six-1.0-py3-none-any.whl": WheelFile("six-1.0-py3-none-any.whl", sha, 1, ("file:///x",))})
    return json.loads(lock.dumps())  # type: ignore[no-any-return]


def test_hand_edited_lock_reports_every_problem_with_location() -> None:
    data = _sample()
    del data["wheels"]["six-1.0-py3-none-any.whl"]["sha256"]
    data["targets"][0]["packages"][0]["version"] = 3
    with pytest.raises(LockFileError) as exc:
        loads_lock(json.dumps(data))
    msg = str(exc.value)
    assert "wheels['six-1.0-py3-none-any.whl'].sha256" in msg
    assert "targets[0].packages[0].version" in msg
    assert exc.value.exit_code == 2


def test_not_json_is_a_usage_error() -> None:
    with pytest.raises(LockFileError, match="not valid JSON"):
        loads_lock("{nope")


def test_wrong_version_is_refused() -> None:
    data = _sample()
    data["lock-version"] = 99
    with pytest.raises(LockFileError, match="lock-version"):
        loads_lock(json.dumps(data))
