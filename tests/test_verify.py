"""Bundle verification against real gpg signatures and hand-made hostile tars."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.support.bundles import Member, bundle_members, make_bundle, write_tar
from tests.support.gpgkeys import GpgKeys
from tests.support.pythons import python39
from tests.support.wheels import build_wheel
from wheelferry.errors import UsageError, VerificationError
from wheelferry.offline.cli import main
from wheelferry.offline.state import load_accepted, record_accepted
from wheelferry.offline.verify import verify_bundle
from wheelferry.pyz import write_offline_pyz


@pytest.fixture
def wheels(tmp_path: Path) -> list[Path]:
    d = tmp_path / "built"
    return [build_wheel(d, "alpha", "1.0"), build_wheel(d, "beta", "2.0", padding=3000)]


@pytest.fixture
def trust(gpg_keys: GpgKeys, tmp_path: Path) -> dict[str, Any]:
    ring = gpg_keys.export("good", path=tmp_path / "KEYS.asc")
    return {"keyring": ring, "trusted": [gpg_keys.fpr["good"]], "state_dir": tmp_path / "state"}


def _unsigned(tmp_path: Path) -> dict[str, Any]:
    return {"keyring": None, "trusted": [], "allow_unsigned": True, "state_dir": tmp_path / "state"}


def _hostile(tmp_path: Path, wheels: list[Path], edit: Any, **kw: Any) -> VerificationError:
    tar = make_bundle(tmp_path, wheels, tamper=edit, **kw)
    with pytest.raises(VerificationError) as e:
        verify_bundle(tar, **_unsigned(tmp_path), extract_to=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.part-")]
    return e.value


def test_good_bundle_verifies_and_extracts(gpg_keys: GpgKeys, tmp_path: Path, wheels: list[Path],
                                           trust: dict[str, Any]) -> None:
    tar = make_bundle(tmp_path, wheels, name="demo", sequence=3)
    gpg_keys.sign("good", tar)
    out = tmp_path / "out"
    b = verify_bundle(tar, **trust, extract_to=out)
    assert b.manifest.name == "demo" and b.manifest.sequence == 3
    assert b.signature is not None and b.signature.fingerprint == gpg_keys.fpr["good"]
    assert b.bytes == tar.stat().st_size
    assert set(b.files) == {"SHA256SUMS", "lock/wheelferry.lock.json",
                            "wheels/alpha-1.0-py3-none-any.whl", "wheels/beta-2.0-py3-none-any.whl"}
    assert b.lock.spec.name == "demo"
    assert (out / "wheels" / wheels[1].name).read_bytes() == wheels[1].read_bytes()
    assert (out / "MANIFEST.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    # verify_bundle itself never records the sequence; the commands do, after success.
    assert load_accepted(trust["state_dir"], "demo") is None


def test_tar_changed_by_one_byte(gpg_keys: GpgKeys, tmp_path: Path, wheels: list[Path],
                                 trust: dict[str, Any]) -> None:
    tar = make_bundle(tmp_path, wheels)
    gpg_keys.sign("good", tar)
    raw = bytearray(tar.read_bytes())
    raw[len(raw) // 2] ^= 0x40
    tar.write_bytes(bytes(raw))
    with pytest.raises(VerificationError, match="does not match the data"):
        verify_bundle(tar, **trust)


def test_swapped_wheel_with_rewritten_sums_and_manifest(gpg_keys: GpgKeys, tmp_path: Path,
                                                        wheels: list[Path], trust: dict[str, Any]) -> None:
    tar = make_bundle(tmp_path, wheels)
    gpg_keys.sign("good", tar)
    evil = build_wheel(tmp_path / "evil", "alpha", "1.0", files={"alpha/evil.py": b"import os\n"})
    make_bundle(tmp_path, [evil, wheels[1]])  # consistent hashes, same name: only the signature differs
    with pytest.raises(VerificationError, match="does not match the data"):
        verify_bundle(tar, **trust)


def test_signature_by_untrusted_key(gpg_keys: GpgKeys, tmp_path: Path, wheels: list[Path]) -> None:
    tar = make_bundle(tmp_path, wheels)
    gpg_keys.sign("other", tar)
    ring = gpg_keys.export("good", "other", path=tmp_path / "KEYS.asc")
    with pytest.raises(VerificationError, match="not one you trust"):
        verify_bundle(tar, keyring=ring, trusted=[gpg_keys.fpr["good"]], state_dir=tmp_path / "s")


def test_missing_signature_file(tmp_path: Path, wheels: list[Path], trust: dict[str, Any]) -> None:
    tar = make_bundle(tmp_path, wheels)
    with pytest.raises(VerificationError, match="no signature file"):
        verify_bundle(tar, **trust)


def test_unsigned_warns(tmp_path: Path, wheels: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    b = verify_bundle(make_bundle(tmp_path, wheels), **_unsigned(tmp_path))
    assert b.signature is None and b.warnings
    assert "NOT checking the signature" in capsys.readouterr().err


def test_extra_member(tmp_path: Path, wheels: list[Path]) -> None:
    e = _hostile(tmp_path, wheels, lambda ms: ms + [Member("demo/wheels/extra.whl", b"x")])
    assert "not listed in MANIFEST.json" in str(e)


def test_missing_member(tmp_path: Path, wheels: list[Path]) -> None:
    e = _hostile(tmp_path, wheels, lambda ms: [m for m in ms if not m.name.endswith(wheels[0].name)])
    assert "missing wheels/alpha-1.0-py3-none-any.whl" in str(e)


def test_duplicate_member(tmp_path: Path, wheels: list[Path]) -> None:
    e = _hostile(tmp_path, wheels, lambda ms: ms + [ms[-1]])
    assert "appears twice" in str(e)


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE, tarfile.CHRTYPE])
def test_links_and_devices(tmp_path: Path, wheels: list[Path], kind: bytes) -> None:
    def edit(ms: list[Member]) -> list[Member]:
        return ms[:2] + [Member("demo/wheels/link.whl", type=kind, linkname="/etc/passwd")] + ms[2:]
    assert "link, device or other special file" in str(_hostile(tmp_path, wheels, edit))


def test_symlink_replacing_a_listed_wheel(tmp_path: Path, wheels: list[Path]) -> None:
    def edit(ms: list[Member]) -> list[Member]:
        return [Member(m.name, type=tarfile.SYMTYPE, linkname="/etc/passwd")
                if m.name.endswith(wheels[0].name) else m for m in ms]
    assert "special file" in str(_hostile(tmp_path, wheels, edit))


@pytest.mark.parametrize("name", ["/etc/cron.d/evil", "demo/../evil", "../evil", "demo/wheels/../../x",
                                  "other/file", "demo\\..\\evil"])
def test_paths_outside_the_bundle(tmp_path: Path, wheels: list[Path], name: str) -> None:
    e = _hostile(tmp_path, wheels, lambda ms: ms[:2] + [Member(name, b"x")] + ms[2:])
    assert repr(name) in str(e), str(e)


def test_member_bigger_than_manifest_size(tmp_path: Path, wheels: list[Path]) -> None:
    members = bundle_members(wheels)
    big = [m.with_data(m.data + b"\0" * 4096) if m.name.endswith(wheels[0].name) else m for m in members]
    tar = write_tar(tmp_path / "demo.tar", big)
    with pytest.raises(VerificationError, match="bytes; MANIFEST.json says"):
        verify_bundle(tar, **_unsigned(tmp_path))


def test_altered_wheel_without_signature(tmp_path: Path, wheels: list[Path]) -> None:
    def edit(ms: list[Member]) -> list[Member]:
        return [m.with_data(m.data[:-1] + bytes([m.data[-1] ^ 1])) if m.name.endswith(wheels[1].name)
                else m for m in ms]
    assert "does not match its sha256" in str(_hostile(tmp_path, wheels, edit))


def test_sums_disagreeing_with_manifest(tmp_path: Path, wheels: list[Path]) -> None:
    members = bundle_members(wheels)
    sums = next(m for m in members if m.name.endswith("SHA256SUMS"))
    bad = sums.data.replace(sums.data[:8], b"00000000", 1)
    # keep the manifest consistent with the new SHA256SUMS so only the disagreement remains
    manifest = json.loads(members[0].data)
    for f in manifest["files"]:
        if f["path"] == "SHA256SUMS":
            f["sha256"] = hashlib.sha256(bad).hexdigest()
    edited = [members[0].with_data(json.dumps(manifest).encode())]
    edited += [m.with_data(bad) if m is sums else m for m in members[1:]]
    with pytest.raises(VerificationError, match="SHA256SUMS and MANIFEST.json disagree"):
        verify_bundle(write_tar(tmp_path / "demo.tar", edited), **_unsigned(tmp_path))


def test_manifest_must_come_first(tmp_path: Path, wheels: list[Path]) -> None:
    e = _hostile(tmp_path, wheels, lambda ms: ms[1:] + ms[:1])
    assert "first member" in str(e)


def test_not_a_tar(tmp_path: Path) -> None:
    junk = tmp_path / "demo.tar"
    junk.write_bytes(b"hello" * 1000)
    with pytest.raises(VerificationError, match="damaged or not a tar"):
        verify_bundle(junk, **_unsigned(tmp_path))


def test_truncated_tar(tmp_path: Path, wheels: list[Path]) -> None:
    tar = make_bundle(tmp_path, wheels)
    tar.write_bytes(tar.read_bytes()[:3000])
    with pytest.raises(VerificationError):
        verify_bundle(tar, **_unsigned(tmp_path))


def test_missing_bundle_is_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        verify_bundle(tmp_path / "nope.tar", **_unsigned(tmp_path))


def test_expired_bundle(tmp_path: Path, wheels: list[Path]) -> None:
    tar = make_bundle(tmp_path, wheels, expires="2026-02-01T00:00:00Z")
    now = dt.datetime(2026, 1, 15, tzinfo=dt.timezone.utc)
    assert verify_bundle(tar, **_unsigned(tmp_path), now=now).manifest.expires
    with pytest.raises(VerificationError, match="expired on 2026-02-01"):
        verify_bundle(tar, **_unsigned(tmp_path), now=now + dt.timedelta(days=30))


def test_older_sequence_replayed(tmp_path: Path, wheels: list[Path],
                                 capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    new = make_bundle(tmp_path, wheels, sequence=5, out=tmp_path / "new.tar")
    old = make_bundle(tmp_path, wheels, sequence=4, out=tmp_path / "old.tar")
    b = verify_bundle(new, **_unsigned(tmp_path))
    record_accepted(state, "demo", 5, b.manifest_sha256)
    assert verify_bundle(new, **_unsigned(tmp_path)).manifest.sequence == 5  # same bundle again is fine
    with pytest.raises(VerificationError, match="sequence 4, older than 5"):
        verify_bundle(old, **_unsigned(tmp_path))
    forced = verify_bundle(old, **_unsigned(tmp_path), force_older=True)
    assert any("--force-older" in w for w in forced.warnings)
    assert "--force-older" in capsys.readouterr().err


def test_same_sequence_different_contents(tmp_path: Path, wheels: list[Path]) -> None:
    a = make_bundle(tmp_path, wheels, sequence=2, out=tmp_path / "a.tar")
    b = make_bundle(tmp_path, wheels[:1], sequence=2, out=tmp_path / "b.tar")
    record_accepted(tmp_path / "state", "demo", 2, verify_bundle(a, **_unsigned(tmp_path)).manifest_sha256)
    with pytest.raises(VerificationError, match="different contents"):
        verify_bundle(b, **_unsigned(tmp_path))


@pytest.mark.parametrize("compress", [None, "gzip"])
def test_bundle_from_the_real_writer(gpg_keys: GpgKeys, tmp_path: Path, wheels: list[Path],
                                     trust: dict[str, Any], compress: str | None) -> None:
    bundle = pytest.importorskip("wheelferry.bundle")
    from tests.support.bundles import host_markers, make_lock
    lock = make_lock(wheels, name="demo", targets={"host": host_markers()})
    out = tmp_path / "out"
    out.mkdir()
    result = bundle.write_bundle(out, name="demo", lock=lock,
                                 lock_files={"wheelferry.lock.json": lock.dumps().encode()},
                                 wheel_paths={w.name: w for w in wheels}, sequence=4,
                                 created=1767225600, expires=None, tool="tests", compress=compress,
                                 sbom=b"{}\n")
    gpg_keys.sign("good", result.path)
    b = verify_bundle(result.path, **trust, extract_to=tmp_path / "x")
    assert b.manifest.sequence == 4 and (tmp_path / "x" / "wheels" / wheels[0].name).is_file()


def _cli(*args: str) -> list[str]:
    return ["verify", *args]


def test_cli_verify(gpg_keys: GpgKeys, tmp_path: Path, wheels: list[Path],
                    capsys: pytest.CaptureFixture[str]) -> None:
    tar = make_bundle(tmp_path, wheels, sequence=7)
    gpg_keys.sign("good", tar)
    ring = gpg_keys.export("good", path=tmp_path / "KEYS.asc")
    state = tmp_path / "state"
    keys = ["--keyring", str(ring), "--trusted-key", gpg_keys.fpr["good"], "--state-dir", str(state)]
    assert main(_cli(str(tar), *keys, "--json")) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and out["sequence"] == 7 and out["signature"]["fingerprint"] == gpg_keys.fpr["good"]
    accepted = load_accepted(state, "demo")
    assert accepted is not None and accepted.sequence == 7
    assert main(_cli(str(tar), "--state-dir", str(state))) == 2  # no keys, no --allow-unsigned
    assert main(_cli(str(tmp_path / "missing.tar"), *keys)) == 2
    assert main(_cli(str(tar), "--keyring", str(tmp_path / "nokeys.asc"), "--trusted-key",
                     gpg_keys.fpr["good"], "--state-dir", str(state))) == 2
    raw = bytearray(tar.read_bytes())
    raw[-2000] ^= 1
    tar.write_bytes(bytes(raw))
    capsys.readouterr()
    assert main(_cli(str(tar), *keys)) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "hint: " in err and "Traceback" not in err


@pytest.mark.skipif(python39() is None, reason="no pyenv Python 3.9 ($PYENV_ROOT/versions or ~/.pyenv/versions)")
def test_verify_on_python39_with_stdlib_only(gpg_keys: GpgKeys, tmp_path: Path, wheels: list[Path]) -> None:
    # The offline kit as an operator runs it: the .pyz on a bare Python 3.9 with -I -S.  Every
    # module it loads comes from the standard library or from the kit itself (its vendored copies).
    tar = make_bundle(tmp_path, wheels)
    gpg_keys.sign("good", tar)
    ring = gpg_keys.export("good", path=tmp_path / "KEYS.asc")
    kit = write_offline_pyz(tmp_path / "wheelferry-offline.pyz")
    script = (
        "import os, sys, sysconfig\n"
        f"kit = {str(kit)!r}\n"
        "sys.path.insert(0, kit)\n"
        "from wheelferry.offline.cli import main\n"
        "rc = main(sys.argv[1:])\n"
        "std = os.path.realpath(sysconfig.get_paths()['stdlib'])\n"
        "bad = sorted(n for n, m in list(sys.modules.items()) if getattr(m, '__file__', None)"
        " and not m.__file__.startswith(kit) and not os.path.realpath(m.__file__).startswith(std))\n"
        "assert not bad, bad\n"
        "sys.exit(rc)\n"
    )
    proc = subprocess.run(
        [python39(), "-I", "-S", "-c", script, "verify", str(tar), "--keyring", str(ring),  # type: ignore[list-item]
         "--trusted-key", gpg_keys.fpr["good"], "--state-dir", str(tmp_path / "state"), "--json"],
        capture_output=True, text=True, env={"PATH": os.environ.get("PATH", "")}, cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert json.loads(proc.stdout)["ok"] is True


def test_signed_hostile_bundle_is_refused_for_its_members(gpg_keys: GpgKeys, tmp_path: Path,
                                                          wheels: list[Path], trust: dict[str, Any]) -> None:
    # A good signature over bad content: gpg agrees, the member check still refuses.
    tar = make_bundle(tmp_path, wheels, tamper=lambda ms: ms + [Member("demo/wheels/extra.whl", b"x")])
    gpg_keys.sign("good", tar)
    with pytest.raises(VerificationError, match="not listed in MANIFEST.json"):
        verify_bundle(tar, **trust, extract_to=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.part-")]


def test_bad_signature_wins_over_member_damage(gpg_keys: GpgKeys, tmp_path: Path, wheels: list[Path],
                                               trust: dict[str, Any]) -> None:
    tar = make_bundle(tmp_path, wheels)
    gpg_keys.sign("good", tar)
    tar.write_bytes(tar.read_bytes()[:3000])  # a truncated copy: unparsable and unsigned
    with pytest.raises(VerificationError, match="does not match the data"):
        verify_bundle(tar, **trust, extract_to=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _bytes_read() -> int:
    """Bytes read through read(2) and the like so far by this process and its reaped children (gpg)."""
    with open("/proc/self/io", encoding="ascii") as f:
        return int(next(line for line in f if line.startswith("rchar:")).split()[1])


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs /proc/self/io (Linux)")
def test_good_signature_is_checked_in_the_same_read(gpg_keys: GpgKeys, tmp_path: Path,
                                                     trust: dict[str, Any]) -> None:
    """The bytes the signature is checked on are the bytes that are parsed: the bundle is read once,
    and gpg reads that same stream from its pipe (its reads count here too)."""
    big = [build_wheel(tmp_path / "w", "big", "1.0", padding=8 << 20)]
    tar = make_bundle(tmp_path, big)
    gpg_keys.sign("good", tar)
    verify_bundle(tar, **trust)  # every module the check needs is loaded before counting
    before = _bytes_read()
    b = verify_bundle(tar, **trust)
    read = _bytes_read() - before
    assert b.signature is not None and b.bytes == tar.stat().st_size
    assert 2 * b.bytes <= read < 2.5 * b.bytes, (read, b.bytes)


def test_zstd_bundle_is_named_not_called_damaged(tmp_path: Path, wheels: list[Path]) -> None:
    tar = make_bundle(tmp_path, wheels)
    zst = tmp_path / "demo.tar.zst"
    zst.write_bytes(b"\x28\xb5\x2f\xfd" + tar.read_bytes()[:4000])
    try:
        import compression.zstd  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        with pytest.raises(VerificationError, match="zstd-compressed, and this Python cannot read") as e:
            verify_bundle(zst, **_unsigned(tmp_path))
        assert e.value.hint is not None and "--compress gzip" in e.value.hint
    else:
        with pytest.raises(VerificationError):
            verify_bundle(zst, **_unsigned(tmp_path))


def test_cli_verify_with_wheelferry_gpg(gpg_keys: GpgKeys, tmp_path: Path, wheels: list[Path],
                                        monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    tar = make_bundle(tmp_path, wheels)
    gpg_keys.sign("good", tar)
    ring = gpg_keys.export("good", path=tmp_path / "KEYS.asc")
    keys = ["--keyring", str(ring), "--trusted-key", gpg_keys.fpr["good"], "--state-dir", str(tmp_path / "s")]
    real = shutil.which("gpg")
    assert real is not None
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # only the gpg named below
    monkeypatch.setenv("WHEELFERRY_GPG", real)
    assert main(_cli(str(tar), *keys)) == 0
    capsys.readouterr()
    monkeypatch.setenv("WHEELFERRY_GPG", str(tmp_path / "gnupg" / "gpg.exe"))
    assert main(_cli(str(tar), *keys)) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"error: WHEELFERRY_GPG={tmp_path / 'gnupg' / 'gpg.exe'} is not an executable file"
    assert [ln for ln in err[1:] if not ln.startswith("hint: ")] == []
