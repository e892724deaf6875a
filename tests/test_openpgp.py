"""OpenPGP framing of a detached signature as a one-pass signed message, checked with real gpg."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.gpgkeys import GpgKeys
from wheelferry.errors import VerificationError
from wheelferry.offline.gpg import parse_status, signature_check, verify_signature
from wheelferry.offline.openpgp import (
    PIECE_BITS,
    LiteralFramer,
    dearmor,
    signature_packet,
    single_signature,
)
from wheelferry.signedmessage import PacketScanner, armor

LITERAL_HEAD = b"b\x00\x00\x00\x00\x00"


def _unframe(stream: bytes) -> bytes:
    """Reference decoder of one new-format literal packet with partial body lengths."""
    assert stream[0] == 0xC0 | 11
    body, i = b"", 1
    while True:
        o1 = stream[i]
        if 224 <= o1 < 255:
            size, i = 1 << (o1 & 0x1F), i + 1
            body += stream[i:i + size]
            i += size
            continue
        assert o1 == 255
        size, i = int.from_bytes(stream[i + 1:i + 5], "big"), i + 5
        body += stream[i:i + size]
        assert i + size == len(stream), "bytes after the last piece"
        return body


def _framed(data: bytes, cuts: list[int], bits: int) -> bytes:
    framer = LiteralFramer(bits)
    out = bytearray(framer.start())
    edges = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    for a, b in zip(edges, edges[1:]):
        for piece in framer.frame(data[a:b]):
            out += piece
    out += framer.end()
    return bytes(out)


@settings(max_examples=200, deadline=None)
@given(size=st.integers(0, 5000), cuts=st.lists(st.integers(0, 5000), max_size=12),
       bits=st.sampled_from([9, 10, 12]))
def test_framer_carries_the_data_exactly(size: int, cuts: list[int], bits: int) -> None:
    data = random.Random(size).randbytes(size)
    stream = _framed(data, cuts, bits)
    assert _unframe(stream) == LITERAL_HEAD + data
    if len(LITERAL_HEAD) + size >= 1 << bits:
        assert stream[1] == 0xE0 | bits  # the first piece is partial and at least 512 bytes


def test_framer_refuses_pieces_gpg_would_refuse() -> None:
    with pytest.raises(ValueError, match="outside"):
        LiteralFramer(8)


def test_dearmor_equals_gpg_dearmor(gpg_keys: GpgKeys, tmp_path: Path) -> None:
    data = tmp_path / "d"
    data.write_bytes(b"x" * 1000)
    sig = gpg_keys.sign("good", data)
    expected = subprocess.run(["gpg", "--dearmor"], input=sig.read_bytes(), capture_output=True,
                              check=True).stdout
    assert dearmor(sig.read_bytes()) == expected
    damaged = sig.read_text().splitlines()
    crc = next(i for i, ln in enumerate(damaged) if ln.startswith("="))
    damaged[crc] = "=AAAA"
    assert dearmor("\n".join(damaged).encode()) is None


def test_single_signature_names_the_signing_key(gpg_keys: GpgKeys, tmp_path: Path) -> None:
    data = tmp_path / "d"
    data.write_bytes(b"y" * 10)
    for name in ("good", "subkey"):
        sig = single_signature(gpg_keys.sign(name, data, tmp_path / f"{name}.asc").read_bytes())
        assert sig is not None
        assert sig.keyid.hex().upper() == gpg_keys.signing_fpr[name][-16:]
    binary = gpg_keys.sign("good", data, tmp_path / "bin.sig", extra=("--no-armor",))
    assert single_signature(binary.read_bytes()) is not None


def test_only_one_plain_binary_signature_is_framed(gpg_keys: GpgKeys, tmp_path: Path) -> None:
    data = tmp_path / "d"
    data.write_bytes(b"z" * 10)
    good = gpg_keys.sign("good", data, tmp_path / "good.asc").read_bytes()
    other = gpg_keys.sign("other", data, tmp_path / "other.asc").read_bytes()
    text = gpg_keys.sign("good", data, tmp_path / "text.asc", extra=("--textmode",)).read_bytes()
    binary = gpg_keys.sign("good", data, tmp_path / "bin.sig", extra=("--no-armor",)).read_bytes()
    assert single_signature(good + other) is None  # two armoured blocks
    assert single_signature(binary + binary) is None  # two packets
    assert single_signature(binary + b"\0") is None  # trailing bytes
    assert single_signature(text) is None  # canonical-text signature: gpg's own path
    assert single_signature(b"\xff" * 100) is None
    assert single_signature(b"") is None
    lines = good.decode().splitlines()
    assert single_signature(("\n".join(lines[:1] + ["Comment: made by a test"] + lines[1:])).encode())
    assert single_signature(("\n".join(lines[:1] + ["Not a header"] + lines[1:])).encode()) is None
    assert single_signature(b"-----BEGIN PGP MESSAGE-----\n\nAAAA\n-----END PGP MESSAGE-----\n" + good) is None


@pytest.mark.parametrize("size", [0, 1, (1 << PIECE_BITS) - 6, (1 << PIECE_BITS) - 5,
                                  (2 << PIECE_BITS) + 3])
def test_framed_check_agrees_with_gpg(gpg_keys: GpgKeys, tmp_path: Path, size: int) -> None:
    data = random.Random(size).randbytes(size)
    path = tmp_path / "bundle.tar"
    path.write_bytes(data)
    sig = gpg_keys.sign("good", path)
    assert single_signature(sig.read_bytes()) is not None
    ring = gpg_keys.export("good", path=tmp_path / "KEYS.asc")
    rng = random.Random(1)
    with signature_check(sig, ring, [gpg_keys.fpr["good"]]) as check:
        at = 0
        while at < size:
            step = rng.choice([1, 7, 4096, 300_000, 1 << PIECE_BITS])
            check.feed(data[at:at + step])
            at += step
        assert check.result().fingerprint == gpg_keys.fpr["good"]
    if size:
        altered = bytearray(data)
        altered[size // 2] ^= 1
        with signature_check(sig, ring, [gpg_keys.fpr["good"]]) as check:
            check.feed(bytes(altered))
            with pytest.raises(VerificationError, match="does not match the data"):
                check.result()


def test_text_mode_signature_is_refused_before_gpg(gpg_keys: GpgKeys, tmp_path: Path) -> None:
    path = tmp_path / "bundle.tar"
    path.write_bytes(b"line one\nline two\n" * 50)
    sig = gpg_keys.sign("good", path, extra=("--textmode",))
    ring = gpg_keys.export("good", path=tmp_path / "KEYS.asc")
    with pytest.raises(VerificationError, match=r"bundle.tar.asc is a text-mode signature \(class 0x01\)"):
        verify_signature(path, sig, ring, [gpg_keys.fpr["good"]])
    # gpg itself calls it good; its status line names the class, which is refused as well.
    status = subprocess.run(["gpg", "--homedir", str(gpg_keys.home), "--batch", "--status-fd", "1",
                             "--verify", str(sig), str(path)], capture_output=True, text=True, check=True)
    assert "[GNUPG:] GOODSIG" in status.stdout
    with pytest.raises(VerificationError, match="class 0x01"):
        parse_status(status.stdout, [gpg_keys.fpr["good"]])


def test_signature_file_holds_one_signature_packet_only(gpg_keys: GpgKeys, tmp_path: Path) -> None:
    data = tmp_path / "d"
    data.write_bytes(b"q" * 10)
    good = gpg_keys.sign("good", data, tmp_path / "good.asc").read_bytes()
    packet = dearmor(good)
    assert packet is not None and signature_packet(good, "good.asc") == packet
    assert signature_packet(packet, "good.sig") == packet
    compressed = _packet(8, b"\x01" + b"\x00" * 50, "new")  # compressed data, ZIP
    marker = _packet(10, b"PGP", "new")
    for raw, match in [(armor(compressed), "holds a compressed data packet"),
                       (armor(marker + packet), "holds a marker packet"),
                       (armor(packet + packet), "holds two signatures; exactly one expected"),
                       (armor(packet[:-3]), "damaged: no whole OpenPGP packet at byte 0"),
                       (armor(packet + b"\xff"), f"no whole OpenPGP packet at byte {len(packet)}"),
                       (b"Comment: " + b"x" * (64 << 10), "larger than 64 KiB"),
                       (b"hello", "not an ASCII-armoured OpenPGP signature")]:
        with pytest.raises(VerificationError, match=match):
            signature_packet(raw, "x.asc")


def test_compressed_packets_never_reach_gpg(gpg_keys: GpgKeys, tmp_path: Path, capsys: Any) -> None:
    from tests.support.bundles import make_bundle
    from tests.support.wheels import build_wheel
    from wheelferry.offline.cli import main
    tar = make_bundle(tmp_path, [build_wheel(tmp_path / "built", "alpha", "1.0")])
    # Nested compressed packets, each a few bytes: gpg spends seconds unpacking such a file.
    inner = _packet(10, b"PGP", "new")
    for _ in range(200):
        inner = _packet(8, b"\x00" + inner, "new")
    tar.with_name(tar.name + ".asc").write_bytes(armor(inner))
    ring = gpg_keys.export("good", path=tmp_path / "KEYS.asc")
    code = main(["verify", str(tar), "--keyring", str(ring), "--trusted-key", gpg_keys.fpr["good"],
                 "--state-dir", str(tmp_path / "state")])
    err = capsys.readouterr().err
    assert code == 1 and err.splitlines()[0] == ("error: demo.tar.asc holds a compressed data packet; "
                                                 "a signature file holds one signature and nothing else"), err
    assert "Traceback" not in err


@given(st.one_of(st.binary(max_size=600),
                 st.lists(st.tuples(st.integers(0, 63), st.binary(max_size=40),
                                    st.sampled_from(["old", "new", "two"])), max_size=4)
                 .map(lambda ps: armor(b"".join(_packet(t, b, k) for t, b, k in ps))),
                 st.binary(max_size=40).map(lambda b: armor(_packet(2, b, "new")))))
def test_fuzz_signature_file(raw: bytes) -> None:
    try:
        packet = signature_packet(raw, "x.asc")
    except VerificationError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("x.asc ")
    else:
        assert packet[0] & 0x80 and len(packet) <= len(raw)
        if packet[0] & 0x40:  # new format: one, two or five length octets
            body = packet[2 if packet[1] < 192 else 3 if packet[1] < 224 else 6:]
        else:
            body = packet[1 + (1 << (packet[0] & 3)):]
        assert (body[2] if body[0] == 3 else body[1]) == 0


def _packet(tag: int, body: bytes, style: str) -> bytes:
    if style == "old":  # old format, four-octet length
        return bytes([0x80 | tag << 2 | 2]) + len(body).to_bytes(4, "big") + body
    if style == "two" and 192 <= len(body) < 8384:
        n = len(body) - 192
        return bytes([0xC0 | tag, (n >> 8) + 192, n & 0xFF]) + body
    if len(body) < 192:
        return bytes([0xC0 | tag, len(body)]) + body
    return bytes([0xC0 | tag, 0xFF]) + len(body).to_bytes(4, "big") + body


@settings(max_examples=200, deadline=None)
@given(packets=st.lists(st.tuples(st.sampled_from([2, 4, 11]), st.binary(max_size=3000),
                                  st.sampled_from(["old", "two", "new", "partial"])), max_size=6),
       cuts=st.lists(st.integers(0, 20000), max_size=10))
def test_scanner_keeps_every_packet_but_literal_data(packets: list[tuple[int, bytes, str]],
                                                     cuts: list[int]) -> None:
    stream, expected = b"", []
    for tag, body, style in packets:
        if style == "partial" and tag == 11:
            raw = _framed(body, [], 9)  # a literal with partial lengths, as gpg writes from a pipe
        else:
            raw = _packet(tag, body, style if style != "partial" else "new")
        stream += raw
        if tag != 11:
            expected.append((tag, raw))
    scanner = PacketScanner()
    edges = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    for a, b in zip(edges, edges[1:]):
        scanner.feed(stream[a:b])
    assert scanner.complete()
    assert scanner.packets == expected
    if stream:
        cut = PacketScanner()
        cut.feed(stream[:-1])
        assert not cut.complete()


def test_scanner_refuses_what_is_not_openpgp() -> None:
    scanner = PacketScanner()
    scanner.feed(b"PK\x03\x04 a zip file")
    assert scanner.error and not scanner.complete()
    big = PacketScanner(cap=100)
    big.feed(_packet(2, b"x" * 200, "new"))
    assert big.error and not big.complete()


def test_armor_round_trips_and_gpg_reads_it(gpg_keys: GpgKeys, tmp_path: Path) -> None:
    data = tmp_path / "d"
    data.write_bytes(b"q" * 100)
    binary = gpg_keys.sign("good", data, tmp_path / "bin.sig", extra=("--no-armor",)).read_bytes()
    armored = armor(binary)
    assert dearmor(armored) == binary
    (tmp_path / "d.asc").write_bytes(armored)
    ring = gpg_keys.export("good", path=tmp_path / "KEYS.asc")
    assert verify_signature(data, tmp_path / "d.asc", ring, [gpg_keys.fpr["good"]]).fingerprint == \
        gpg_keys.fpr["good"]
