"""Reading back what ``gpg --sign`` writes while build streams the bundle into it (build side only).

:class:`PacketScanner` splits gpg's signed message into packets, skipping the literal
data (the bundle again) without a copy; :func:`armor` writes the one signature packet
cut out of it as the ``.asc`` file.  The offline kit only reads signatures
(:mod:`wheelferry.offline.openpgp`), so none of this ships in it.
"""

from __future__ import annotations

import base64

from wheelferry.offline.openpgp import (
    ARMOR_BEGIN,
    ARMOR_END,
    TAG_LITERAL,
    body_length,
    crc24,
    packet_header,
)


def armor(packet: bytes) -> bytes:
    """*packet* as an ASCII-armoured signature block, the way ``gpg --armor`` writes one."""
    text = base64.b64encode(packet).decode("ascii")
    lines = [text[i:i + 64] for i in range(0, len(text), 64)]
    crc = base64.b64encode(crc24(packet)).decode("ascii")
    return "\n".join([ARMOR_BEGIN, "", *lines, f"={crc}", ARMOR_END, ""]).encode("ascii")


class PacketScanner:
    """Splits an OpenPGP packet stream fed in pieces; keeps whole packets except literal data.

    Used on the output of ``gpg --sign``: the literal data (the whole signed
    file again) is skipped without a copy, the packets around it are kept,
    at most *cap* bytes of them.
    """

    def __init__(self, cap: int = 1 << 20) -> None:
        self.packets: list[tuple[int, bytes]] = []
        self.error = ""
        self._cap = cap
        self._head = bytearray()
        self._in_body = False
        self._more_pieces = False  # the body continues after this partial piece
        self._left = 0
        self._tag = 0
        self._kept: bytearray | None = None

    def feed(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        pos, end = 0, len(view)
        while pos < end and not self.error:
            if self._in_body:
                take = min(self._left, end - pos)
                if self._kept is not None:
                    self._kept += view[pos:pos + take]
                pos += take
                self._left -= take
                if self._left == 0:
                    self._in_body = False
                    if not self._more_pieces:
                        self._end_packet()
                continue
            octet = view[pos]
            pos += 1
            if self._more_pieces and not self._head and 224 <= octet < 255:
                # The next piece of a partial body (gpg writes 8 KiB ones): no header to keep.
                if self._kept is not None:
                    self._kept.append(octet)
                self._left, self._in_body = 1 << (octet & 0x1F), True
                continue
            self._head.append(octet)
            self._parse_head()

    def _parse_head(self) -> None:
        head = self._head
        if self._more_pieces:  # the next length of a partial body: no tag before it
            length = body_length(head, 0)
            parsed = None if length is None else length[:2]
        else:
            try:
                found = packet_header(head)
            except ValueError as exc:
                self.error = str(exc)
                return
            if found is None:
                return
            self._tag, parsed = found[0], (found[2], found[3])
            self._kept = None if self._tag == TAG_LITERAL else bytearray()
        if parsed is None:
            return
        if self._kept is not None:
            self._kept += head
            if len(self._kept) + parsed[0] + sum(len(p) for _, p in self.packets) > self._cap:
                self.error = "more than a signature around the data"
                return
        self._head = bytearray()
        self._left, self._more_pieces = parsed
        self._in_body = True
        if self._left == 0:
            self._in_body = False
            if not self._more_pieces:
                self._end_packet()

    def _end_packet(self) -> None:
        if self._kept is not None:
            self.packets.append((self._tag, bytes(self._kept)))
        self._kept = None

    def complete(self) -> bool:
        """True when the stream ended exactly at a packet boundary with no error."""
        return not self.error and not self._in_body and not self._head and not self._more_pieces
