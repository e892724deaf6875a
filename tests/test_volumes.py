"""Split volumes: cut a signed bundle into pieces, verify and audit them joined; gaps and swaps named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.support.bundles import make_bundle
from tests.support.gpgkeys import GpgKeys
from tests.support.wheels import build_wheel, sha256_file
from wheelferry.errors import UsageError, VerificationError
from wheelferry.offline.cli import main
from wheelferry.offline.volumes import joined_bundle, load_volume_list, parse_size, split_bundle


@pytest.mark.parametrize(("text", "size"), [("4G", 4_000_000_000), ("700M", 700_000_000), ("100K", 100_000),
                                            ("4Gi", 4 << 30), ("700Mi", 700 << 20), ("100KiB", 100 << 10),
                                            ("2048", 2048), ("1MiB", 1 << 20), ("3kb", 3000), ("2048B", 2048),
                                            ("fat32", (4 << 30) - 1), ("FAT32", 4294967295)])
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "4Q", "-1", "1.5G", "12", "1000", "4iB", "fat16"])
def test_parse_size_refuses(text: str) -> None:
    with pytest.raises(UsageError):
        parse_size(text)


@pytest.fixture
def split(gpg_keys: GpgKeys, tmp_path: Path) -> dict[str, Any]:
    """A signed bundle of about 30 KB cut into three volumes; the tar itself removed."""
    d = tmp_path / "built"
    wheels = [build_wheel(d, "alpha", "1.0", padding=12000), build_wheel(d, "beta", "2.0", padding=9000)]
    out = tmp_path / "media"
    out.mkdir()
    tar = make_bundle(tmp_path, wheels, name="demo", out=out / "demo.tar")
    gpg_keys.sign("good", tar)
    whole = sha256_file(tar)
    volume = -(-tar.stat().st_size // 3)
    list_path, vset = split_bundle(tar, volume)
    gpg_keys.sign("good", list_path)
    tar.unlink()
    ring = gpg_keys.export("good", path=tmp_path / "KEYS.asc")
    return {"dir": out, "list": list_path, "vset": vset, "sha256": whole, "volume": volume,
            "trust": {"keyring": ring, "trusted": [gpg_keys.fpr["good"]]},
            "args": ["--keyring", str(ring), "--trusted-key", gpg_keys.fpr["good"],
                     "--state-dir", str(tmp_path / "state")]}


def test_split_into_three_and_join(split: dict[str, Any]) -> None:
    vset = split["vset"]
    assert [v.name for v in vset.volumes] == ["demo.tar.000", "demo.tar.001", "demo.tar.002"]
    assert all(v.size <= split["volume"] for v in vset.volumes)
    assert vset.sha256 == split["sha256"]
    doc = json.loads(split["list"].read_text())
    assert doc["bundle"] == "demo.tar" and doc["volumes"][1]["sha256"] == sha256_file(split["dir"] / "demo.tar.001")
    assert load_volume_list(split["list"]) == vset
    with joined_bundle(split["dir"] / "demo.tar.000", **split["trust"]) as tar:
        assert tar.name == "demo.tar" and sha256_file(tar) == split["sha256"]
        assert (tar.parent / "demo.tar.asc").is_file()
        work = tar.parent
    assert not work.exists()


@pytest.mark.parametrize("entry", ["demo.tar.000", "demo.volumes.json"])
def test_verify_accepts_first_volume_or_list(split: dict[str, Any], entry: str, capsys: Any) -> None:
    assert main(["verify", str(split["dir"] / entry), *split["args"]]) == 0
    assert "bundle demo #1" in capsys.readouterr().out


def test_audit_reads_volumes(split: dict[str, Any], capsys: Any) -> None:
    args = [a for a in split["args"] if "state" not in a][:4]
    assert main(["audit", str(split["dir"] / "demo.tar.000"), *args, "--format", "json"]) == 0
    assert [w["name"] for w in json.loads(capsys.readouterr().out)["wheels"]] == ["alpha", "beta"]


def _fails(split: dict[str, Any], capsys: Any) -> str:
    code = main(["verify", str(split["dir"] / "demo.tar.000"), *split["args"]])
    err = capsys.readouterr().err
    assert code == 1, err
    assert not list(split["dir"].glob("demo.tar")) and not (split["dir"].parent / "state").exists()
    return err.splitlines()[0]


def test_missing_volume_is_named(split: dict[str, Any], capsys: Any) -> None:
    (split["dir"] / "demo.tar.001").unlink()
    assert _fails(split, capsys) == "error: volume demo.tar.001 (2 of 3) is missing"


def test_altered_volume_is_named(split: dict[str, Any], capsys: Any) -> None:
    path = split["dir"] / "demo.tar.002"
    data = bytearray(path.read_bytes())
    data[10] ^= 1
    path.write_bytes(bytes(data))
    assert _fails(split, capsys) == ("error: volume demo.tar.002 (3 of 3) does not match its sha256 in the "
                                     "volume list (altered or damaged)")


def test_truncated_volume_is_named(split: dict[str, Any], capsys: Any) -> None:
    path = split["dir"] / "demo.tar.001"
    path.write_bytes(path.read_bytes()[:-5])
    assert "volume demo.tar.001 (2 of 3) is" in _fails(split, capsys)


def test_swapped_volumes_are_named(split: dict[str, Any], capsys: Any) -> None:
    a, b = split["dir"] / "demo.tar.000", split["dir"] / "demo.tar.001"
    shutil.move(a, a.with_suffix(".tmp"))
    shutil.move(b, a)
    shutil.move(a.with_suffix(".tmp"), b)
    assert _fails(split, capsys) == ("error: volume demo.tar.000 (1 of 3) holds the data of demo.tar.001: "
                                     "the volumes were swapped or renamed")


def test_edited_volume_list_fails_its_signature(split: dict[str, Any], capsys: Any) -> None:
    doc = json.loads(split["list"].read_text())
    doc["volumes"][0]["size"] += 1
    split["list"].write_text(json.dumps(doc))
    assert "signature does not match" in _fails(split, capsys)


def test_unsigned_list_checks_volumes_still(split: dict[str, Any]) -> None:
    (split["dir"] / "demo.tar.002").write_bytes(b"x")
    with pytest.raises(VerificationError, match="demo.tar.002"), \
            joined_bundle(split["list"], keyring=None, trusted=[], allow_unsigned=True):
        pass


def test_missing_list_is_usage(split: dict[str, Any], capsys: Any) -> None:
    split["list"].unlink()
    (split["dir"] / "demo.volumes.json.asc").unlink()
    code = main(["verify", str(split["dir"] / "demo.tar.000"), "--allow-unsigned"])
    assert code == 2 and "volume list demo.volumes.json" in capsys.readouterr().err


def test_build_split_size_end_to_end(index_server: Any, tmp_path: Path, gpg_keys: GpgKeys,
                                     capsys: Any) -> None:
    from wheelferry.cli import main as wheelferry

    d = tmp_path / "repo"
    build_wheel(d, "app", "1.0", requires=["dep"], padding=40_000)
    build_wheel(d, "dep", "1.0", padding=30_000)
    server = index_server(d)
    out = tmp_path / "out"
    code = wheelferry(["build", "-r", "app", "--target", "linux-x86_64:3.11", "--index-url", server.url,
                       "--cache", str(tmp_path / "cache"), "-o", str(out), "--split-size", "30K",
                       "--sign-key", gpg_keys.fpr["good"], "--gnupghome", str(gpg_keys.home), "--json"])
    res = json.loads(capsys.readouterr().out)
    assert code == 0, res
    names = sorted(p.name for p in out.iterdir())
    assert "app.tar" not in names and {"app.tar.asc", "app.volumes.json", "app.volumes.json.asc",
                                       "app.tar.000", "app.tar.001", "app.tar.002"} <= set(names)
    assert all(v["size"] <= 30 * 1024 for v in res["volumes"]["volumes"])
    assert str(out / "app.volumes.json.asc") in res["signatures"]
    ring = gpg_keys.export("good", path=tmp_path / "KEYS.asc")
    keys = ["--keyring", str(ring), "--trusted-key", gpg_keys.fpr["good"]]
    assert main(["verify", str(out / "app.tar.000"), *keys, "--state-dir", str(tmp_path / "s")]) == 0
    capsys.readouterr()
    assert main(["audit", str(out / "app.volumes.json"), *keys, "--format", "json"]) == 0
    assert {w["name"] for w in json.loads(capsys.readouterr().out)["wheels"]} == {"app", "dep"}


def test_build_refuses_a_bad_split_size(tmp_path: Path, capsys: Any) -> None:
    from wheelferry.cli import main as wheelferry

    code = wheelferry(["build", "-r", "app", "--no-sign", "--split-size", "lots", "-o", str(tmp_path / "o")])
    assert code == 2 and "--split-size 'lots' is not a size" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
