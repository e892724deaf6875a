"""Just enough OpenPGP packet framing (RFC 4880) to let gpg check a detached signature quickly.

Standard library only.  gpg 2.2 hashes the data of a *detached* signature one
byte at a time (about 300 MB/s), but the literal data of a *signed message* in
32 KiB blocks (about 900 MB/s).  For a version 4 signature over a binary
document both hash exactly the same bytes (the data, then the signature's
trailer; RFC 4880 section 5.2.4), so a detached signature can be checked by
handing gpg the message ``one-pass signature, literal data, signature``
(section 11.3) built around it.  gpg still does every cryptographic and key
check; this module only frames bytes.  Whatever is not exactly one plain v4
binary-document signature in a clean armour block (or a bare packet) is left
to gpg's own detached path.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from dataclasses import dataclass

from wheelferry.errors import VerificationError

ARMOR_BEGIN = "-----BEGIN PGP SIGNATURE-----"
ARMOR_END = "-----END PGP SIGNATURE-----"
_ARMOR_HEADER = re.compile(r"^[A-Za-z][A-Za-z0-9-]*: ")
_TAG_SIGNATURE = 2
_TAG_ONE_PASS = 4
TAG_LITERAL = 11
_SUB_ISSUER = 16
_SUB_ISSUER_FPR = 33
# Partial body lengths of 2**20: whole pieces of a stream whose length is not known up front.
PIECE_BITS = 20
MAX_SIGNATURE_FILE = 64 << 10


@dataclass(frozen=True)
class Signature:
    """One v4 signature packet over a binary document, as read from a ``.asc`` file."""

    packet: bytes
    pubkey_algo: int
    hash_algo: int
    keyid: bytes

    def one_pass(self) -> bytes:
        """The one-pass signature packet announcing this signature (RFC 4880 5.4)."""
        body = bytes([3, 0x00, self.hash_algo, self.pubkey_algo]) + self.keyid + b"\x01"
        return _newpacket_header(_TAG_ONE_PASS, len(body)) + body


def _newpacket_header(tag: int, length: int) -> bytes:
    return bytes([0xC0 | tag, 0xFF]) + length.to_bytes(4, "big")


def dearmor(text: bytes) -> bytes | None:
    """The bytes of a single ASCII-armoured signature block, or None when it is anything else."""
    try:
        lines = text.decode("ascii").splitlines()
    except UnicodeDecodeError:
        return None
    stripped = [ln.strip() for ln in lines]
    if stripped.count(ARMOR_BEGIN) != 1 or stripped.count(ARMOR_END) != 1:
        return None
    start, end = stripped.index(ARMOR_BEGIN), stripped.index(ARMOR_END)
    if any(stripped[:start]) or any(stripped[end + 1:]):
        return None  # anything around the block: gpg's own parser decides
    block = stripped[start + 1:end]
    if "" not in block:
        return None
    headers, body = block[:block.index("")], block[block.index("") + 1:]
    if not all(_ARMOR_HEADER.match(h) for h in headers):  # "Comment: ...", "Version: ..."
        return None
    checksum = body.pop() if body and body[-1].startswith("=") else None
    try:
        data = base64.b64decode("".join(body), validate=True)
        if checksum is not None and base64.b64decode(checksum[1:], validate=True) != crc24(data):
            return None
    except (binascii.Error, ValueError):
        return None
    return data


def crc24(data: bytes) -> bytes:
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return (crc & 0xFFFFFF).to_bytes(3, "big")


def _packet(data: bytes) -> tuple[int, int, int] | None:
    """(tag, body offset, body length) of the packet at the start of *data*; None if unusual."""
    try:
        head = packet_header(data) if data else None
    except ValueError:
        return None
    if head is None or head[3]:  # partial lengths are not used for signatures
        return None
    return head[0], head[1], head[2]


def _subpackets(area: bytes) -> Iterator[tuple[int, bytes]]:
    i = 0
    while i < len(area):
        o1 = area[i]
        if o1 < 192:
            size, i = o1, i + 1
        elif o1 < 255:
            if i + 1 >= len(area):
                return
            size, i = ((o1 - 192) << 8) + area[i + 1] + 192, i + 2
        else:
            size, i = int.from_bytes(area[i + 1:i + 5], "big"), i + 5
        if size == 0 or i + size > len(area):
            return
        yield area[i] & 0x7F, area[i + 1:i + size]
        i += size


_PACKET_KINDS = {1: "encrypted session key", 3: "symmetric session key", 4: "one-pass signature",
                 5: "secret key", 6: "public key", 7: "secret subkey", 8: "compressed data",
                 9: "encrypted data", 10: "marker", 11: "literal data", 12: "trust", 13: "user id",
                 14: "public subkey", 17: "user attribute", 18: "encrypted data", 19: "modification code"}
_COUNT_WORDS = {2: "two", 3: "three"}


def signature_packet(raw: bytes, name: str) -> bytes:
    """The one signature packet of the signature file *name* (armoured or binary), else a one-line refusal.

    The file is unsigned: what gpg is later handed is this packet alone, at
    most 64 KiB, of signature class 0x00 (a binary document, which is what
    build makes).  Compressed, marker or any other packets never reach gpg.
    """
    if len(raw) > MAX_SIGNATURE_FILE:
        raise VerificationError(f"{name} is larger than {MAX_SIGNATURE_FILE >> 10} KiB; a signature file "
                                f"holds one signature (under 1 KiB)", hint=_HINT)
    data = raw if raw[:1] and raw[0] & 0x80 else _dearmor_blocks(raw)
    if data is None:
        raise VerificationError(f"{name} is not an ASCII-armoured OpenPGP signature", hint=_HINT)
    packets: list[bytes] = []
    at = 0
    while at < len(data):
        try:
            head = packet_header(data[at:at + 6])
        except ValueError:
            head = None
        if head is None or head[3] or at + head[1] + head[2] > len(data):
            raise VerificationError(f"{name} is damaged: no whole OpenPGP packet at byte {at}", hint=_HINT)
        if head[0] != _TAG_SIGNATURE:
            kind = _PACKET_KINDS.get(head[0], f"tag {head[0]}")
            raise VerificationError(f"{name} holds a {kind} packet; a signature file holds one "
                                    f"signature and nothing else", hint=_HINT)
        packets.append(data[at:at + head[1] + head[2]])
        at += head[1] + head[2]
    if len(packets) != 1:
        count = _COUNT_WORDS.get(len(packets), str(len(packets)))
        raise VerificationError(f"{name} holds {count} signatures; exactly one expected",
                                hint="re-sign the bundle with a single key")
    packet = packets[0]
    body = packet[packet_header(packet[:6])[1]:]  # type: ignore[index]
    # RFC 4880 5.2.2: a version 3 signature has its class after a length octet; 5.2.3 (and
    # RFC 9580's version 6) right after the version.
    sig_class = body[2] if body[:1] == b"\x03" and len(body) > 2 else body[1] if len(body) > 1 else None
    if sig_class == 0x01:
        raise VerificationError(f"{name} is a text-mode signature (class 0x01); wheelferry build makes "
                                f"binary ones (class 0x00), so it was not made by build", hint=_HINT)
    if sig_class != 0x00:
        what = "no class" if sig_class is None else f"class 0x{sig_class:02x}"
        raise VerificationError(f"{name} is a signature of {what}, not one over a binary document (0x00)",
                                hint=_HINT)
    return packet


def _dearmor_blocks(raw: bytes) -> bytes | None:
    """The packets of one or more armoured signature blocks with nothing but blank lines around them."""
    blocks = re.split(rb"(?<=" + ARMOR_END.encode() + rb")", raw)
    if blocks and not blocks[-1].strip():
        blocks.pop()
    out = [dearmor(block) for block in blocks]
    return None if not out or any(b is None for b in out) else b"".join(b for b in out if b is not None)


_HINT = "it must be the detached .asc made by `wheelferry build` for this bundle"


def single_signature(raw: bytes) -> Signature | None:
    """The signature in a ``.asc`` (armoured or binary) if it is exactly one v4 binary one."""
    if len(raw) > MAX_SIGNATURE_FILE:
        return None
    data = raw if raw[:1] and raw[0] & 0x80 else dearmor(raw)
    if data is None:
        return None
    head = _packet(data)
    if head is None:
        return None
    tag, offset, length = head
    if tag != _TAG_SIGNATURE or offset + length != len(data):
        return None
    body = data[offset:]
    if len(body) < 6 or body[0] != 4 or body[1] != 0x00:
        return None
    hashed_len = int.from_bytes(body[4:6], "big")
    hashed = body[6:6 + hashed_len]
    rest = body[6 + hashed_len:]
    if len(hashed) != hashed_len or len(rest) < 2:
        return None
    unhashed = rest[2:2 + int.from_bytes(rest[:2], "big")]
    keyid = None
    for kind, value in (*_subpackets(hashed), *_subpackets(unhashed)):
        if kind == _SUB_ISSUER and len(value) == 8:
            keyid = value
        elif kind == _SUB_ISSUER_FPR and len(value) == 21 and value[0] == 4:
            keyid = value[-8:]
        if keyid is not None:
            break
    if keyid is None:
        return None
    return Signature(packet=data, pubkey_algo=body[2], hash_algo=body[3], keyid=keyid)


class LiteralFramer:
    """Frames a byte stream as one binary literal data packet with partial body lengths.

    :meth:`start` gives the first bytes; every :meth:`frame` call returns the
    pieces to write for the next data chunk; :meth:`end` closes the packet.
    """

    def __init__(self, piece_bits: int = PIECE_BITS) -> None:
        if not 9 <= piece_bits <= 30:  # the first partial piece must be 512 bytes or more
            raise ValueError(f"piece size 2**{piece_bits} is outside 2**9 .. 2**30")
        self._bits = piece_bits
        self._piece = 1 << piece_bits
        # The literal body starts with format 'b', an empty file name and a zero date.
        self._pending = bytearray(b"b\x00\x00\x00\x00\x00")

    def start(self) -> bytes:
        return bytes([0xC0 | TAG_LITERAL])

    def frame(self, chunk: bytes) -> list[bytes | memoryview]:
        out: list[bytes | memoryview] = []
        view = memoryview(chunk)
        if self._pending:
            need = self._piece - len(self._pending)
            self._pending += view[:need]
            view = view[need:]
            if len(self._pending) < self._piece:
                return out
            out += [bytes([0xE0 | self._bits]), bytes(self._pending)]
            self._pending = bytearray()
        whole = len(view) - len(view) % self._piece
        for at in range(0, whole, self._piece):
            out += [bytes([0xE0 | self._bits]), view[at:at + self._piece]]
        self._pending += view[whole:]
        return out

    def end(self) -> bytes:
        rest = bytes(self._pending)
        self._pending = bytearray()
        return b"\xFF" + len(rest).to_bytes(4, "big") + rest


def body_length(buf: bytes | bytearray, at: int) -> tuple[int, bool, int] | None:
    """A new-format body length at *at*: (length, partial, octets it took); None until all are there."""
    o1 = buf[at]
    if o1 < 192:
        return o1, False, 1
    if o1 < 224:
        return (((o1 - 192) << 8) + buf[at + 1] + 192, False, 2) if len(buf) > at + 1 else None
    if o1 < 255:
        return 1 << (o1 & 0x1F), True, 1
    return (int.from_bytes(buf[at + 1:at + 5], "big"), False, 5) if len(buf) >= at + 5 else None


def packet_header(buf: bytes | bytearray) -> tuple[int, int, int, bool] | None:
    """(tag, header size, body length, partial) of the packet header at the start of *buf*.

    None while more bytes are needed; ValueError for what is no packet header read here.
    """
    first = buf[0]
    if not first & 0x80:
        raise ValueError("not an OpenPGP packet stream")
    if first & 0x40:  # new format
        parsed = body_length(buf, 1) if len(buf) > 1 else None
        return None if parsed is None else (first & 0x3F, 1 + parsed[2], parsed[0], parsed[1])
    width = {0: 1, 1: 2, 2: 4}.get(first & 0x03)
    if width is None:
        raise ValueError("a packet of indeterminate length")
    if len(buf) < 1 + width:
        return None
    return (first >> 2) & 0x0F, 1 + width, int.from_bytes(buf[1:1 + width], "big"), False
