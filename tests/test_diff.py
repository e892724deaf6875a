"""diff: two signed bundles compared per target; a re-published wheel raises the alarm."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.bundles import host_markers, make_bundle, make_lock
from tests.support.gpgkeys import GpgKeys
from tests.support.wheels import build_wheel
from wheelferry.offline.cli import main
from wheelferry.offline.diff import diff_locks

LINUX, WINDOWS = "linux-x86_64-cp311-cpu", "windows-amd64-cp311-cpu"


def _bundle(tmp_path: Path, gpg_keys: GpgKeys, name: str, wheels: list[Path],
            per_target: dict[str, list[str]] | None = None, sequence: int = 1) -> Path:
    targets = {t: host_markers() for t in (per_target or {LINUX: []})}
    lock = make_lock(wheels, name="demo", targets=targets,
                     per_target={t: [w.name for w in wheels if w.name in (per_target or {}).get(t, [w.name])]
                                 for t in targets})
    out = tmp_path / name
    out.mkdir()
    tar = make_bundle(tmp_path, wheels, name="demo", lock=lock, targets=targets, sequence=sequence,
                      out=out / "demo.tar")
    gpg_keys.sign("good", tar)
    return tar


@pytest.fixture
def pair(tmp_path: Path, gpg_keys: GpgKeys) -> dict[str, Any]:
    a, b = tmp_path / "a", tmp_path / "b"
    old = [build_wheel(a, "keep", "1.0"), build_wheel(a, "gone", "1.0"), build_wheel(a, "up", "1.0"),
           build_wheel(a, "down", "2.0", padding=5000)]
    new = [old[0], build_wheel(b, "fresh", "0.1", padding=2000), build_wheel(b, "up", "1.10"),
           build_wheel(b, "down", "1.9")]
    ring = gpg_keys.export("good", path=tmp_path / "KEYS.asc")
    return {"old": _bundle(tmp_path, gpg_keys, "old", old, sequence=1),
            "new": _bundle(tmp_path, gpg_keys, "new", new, sequence=2),
            "keys": ["--keyring", str(ring), "--trusted-key", gpg_keys.fpr["good"]],
            "delta": sum(w.stat().st_size for w in new) - sum(w.stat().st_size for w in old)}


def _run(capsys: Any, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_added_removed_upgraded_downgraded(pair: dict[str, Any], capsys: Any) -> None:
    code, out, err = _run(capsys, "diff", str(pair["old"]), str(pair["new"]), *pair["keys"], "--format", "json")
    assert code == 0, err
    t = json.loads(out)["targets"][0]
    assert t["target"] == LINUX
    assert [c["name"] for c in t["added"]] == ["fresh"]
    assert [c["name"] for c in t["removed"]] == ["gone"]
    assert [(c["name"], c["old"], c["new"]) for c in t["upgraded"]] == [("up", "1.0", "1.10")]
    assert [(c["name"], c["old"], c["new"]) for c in t["downgraded"]] == [("down", "2.0", "1.9")]
    assert t["size-change"] == pair["delta"] and json.loads(out)["republished"] == []


def test_table_output(pair: dict[str, Any], capsys: Any) -> None:
    code, out, _ = _run(capsys, "diff", str(pair["old"]), str(pair["new"]), *pair["keys"])
    assert code == 0
    assert f"{LINUX}: 1 added, 1 removed, 1 upgraded, 1 downgraded; size -" in out
    assert "  ^ up 1.0 -> 1.10" in out and "  v down 2.0 -> 1.9" in out and "  + fresh 0.1" in out


def test_older_bundle_is_readable_after_newer_was_accepted(pair: dict[str, Any], tmp_path: Path,
                                                           capsys: Any) -> None:
    state = tmp_path / "state"
    assert main(["verify", str(pair["new"]), *pair["keys"], "--state-dir", str(state)]) == 0
    code, _, err = _run(capsys, "diff", str(pair["old"]), str(pair["new"]), *pair["keys"])
    assert code == 0, err


def test_same_name_and_version_with_new_bytes_is_an_alarm(tmp_path: Path, gpg_keys: GpgKeys,
                                                          capsys: Any) -> None:
    first = build_wheel(tmp_path / "a", "same", "1.0")
    again = build_wheel(tmp_path / "b", "same", "1.0", padding=100)
    assert first.name == again.name
    old = _bundle(tmp_path, gpg_keys, "old", [first])
    new = _bundle(tmp_path, gpg_keys, "new", [again], sequence=2)
    ring = gpg_keys.export("good", path=tmp_path / "KEYS.asc")
    code, out, err = _run(capsys, "diff", str(old), str(new), "--keyring", str(ring),
                          "--trusted-key", gpg_keys.fpr["good"])
    assert code == 1
    assert "!!! ALARM: same-1.0-py3-none-any.whl is in both bundles with DIFFERENT contents" in out
    assert "re-published or tampered" in err


def test_targets_added_and_dropped(tmp_path: Path) -> None:
    w = [build_wheel(tmp_path, "one", "1.0"), build_wheel(tmp_path, "two", "1.0")]
    old = make_lock(w, name="d", targets={LINUX: host_markers()})
    new = make_lock(w, name="d", targets={WINDOWS: host_markers()}, per_target={WINDOWS: [w[0].name]})
    d = diff_locks(old, new)
    by = {t.target: t for t in d.targets}
    assert by[LINUX].presence == "removed" and len(by[LINUX].of("removed")) == 2
    assert by[WINDOWS].presence == "added" and [c.name for c in by[WINDOWS].of("added")] == ["one"]


def test_an_unverifiable_bundle_stops_the_diff(pair: dict[str, Any], capsys: Any) -> None:
    Path(str(pair["new"]) + ".asc").unlink()
    code, out, err = _run(capsys, "diff", str(pair["old"]), str(pair["new"]), *pair["keys"])
    assert code == 1 and out == "" and "no signature file" in err


def test_diff_names_the_higher_sequence_and_what_goes_backwards(pair: dict[str, Any], tmp_path: Path,
                                                                gpg_keys: GpgKeys, capsys: Any) -> None:
    # The newer content built under a lower sequence: OLD (2.0 of "down") carries #7.
    a = tmp_path / "a7"
    old = _bundle(tmp_path, gpg_keys, "old7", [build_wheel(a, "down", "2.0")], sequence=7)
    new = _bundle(tmp_path, gpg_keys, "new3", [build_wheel(tmp_path / "b3", "down", "1.9")], sequence=3)
    code, out, err = _run(capsys, "diff", str(old), str(new), *pair["keys"], "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert (doc["old-sequence"], doc["new-sequence"]) == (7, 3)
    assert doc["backwards"] == ["demo #7 carries the higher sequence (7 > 3): demo #3 is the older bundle",
                                f"demo #3 goes backwards for 1 package: down 2.0 -> 1.9 ({LINUX})"]
    assert [f"warning: {n}" for n in doc["backwards"]] == err.splitlines()
    code, out, err = _run(capsys, "diff", str(pair["old"]), str(pair["new"]), *pair["keys"])
    assert "higher sequence" not in err and "demo #2 goes backwards for 1 package: down 2.0 -> 1.9" in err
