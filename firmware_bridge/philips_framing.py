"""IntelliVue MIB/RS232 framing: 0xC0 | header | user data | FCS | 0xC1, with 0x7D transparency.

Sources (../shared/REFERENCES.md): Philips IntelliVue Data Export Interface
Programming Guide; xeonfusion/VSCaptureMP Class3.cs (framing and FCS);
mdpnp/mdpnp devices/philips/.../intellivue (Intellivue.java).

- Header ``{0x11, 0x01, len_hi, len_lo}``: protocol id (Data Export), message type
  (AS/DE), user-data length (uint16 BE).
- FCS: ones' complement of the PPP CRC-16 (RFC 1662: reflected poly 0x8408,
  init 0xFFFF) over header + unescaped user data, sent low byte first. Check
  value over ASCII "123456789": 0x906E. Computed with ``binascii.crc_hqx`` (the
  non-reflected CCITT CRC, in C) on bit-reversed bytes: a reflected CRC equals the
  bit-reversed normal CRC of the bit-reversed input, so no per-byte Python loop.
- Transparency: 0xC0, 0xC1, 0x7D inside a frame are sent as 0x7D, byte ^ 0x20.
  VSCaptureMP does not escape the FCS bytes it sends; :class:`Deframer` accepts
  both (an unescaped 0xC1 inside the FCS is recovered by extending to the next 0xC1).

:class:`Deframer` is sans-IO: bytes in, user-data payloads out; bad frames (FCS,
length, escape, oversize) are counted, and it resynchronises on the next 0xC0.
"""

from __future__ import annotations

import binascii
import struct

BOF = 0xC0
EOF_ = 0xC1
ESC = 0x7D
HDR_PROTOCOL = 0x11
HDR_MSG_TYPE = 0x01
MAX_FRAME = 8192  # user data; real replies are a few hundred bytes, the guide caps at ~ 5 kB

_REV = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def fcs16(data: bytes) -> int:
    """PPP FCS-16 (CRC-16/X-25) of ``data``: the value sent on the wire (already complemented)."""
    c = binascii.crc_hqx(data.translate(_REV), 0xFFFF)
    return ((_REV[c & 0xFF] << 8) | _REV[c >> 8]) ^ 0xFFFF


def escape(data: bytes) -> bytes:
    if b"\x7d" in data:
        data = data.replace(b"\x7d", b"\x7d\x5d")
    if b"\xc0" in data:
        data = data.replace(b"\xc0", b"\x7d\xe0")
    if b"\xc1" in data:
        data = data.replace(b"\xc1", b"\x7d\xe1")
    return data


def unescape(data: bytes) -> bytes | None:
    """Undo transparency; None for an invalid escape (0x7D at the end or before 0x7D)."""
    if b"\x7d" not in data:
        return data
    parts = data.split(b"\x7d")
    out = bytearray(parts[0])
    for p in parts[1:]:
        if not p:
            return None
        out.append(p[0] ^ 0x20)
        out += p[1:]
    return bytes(out)


def encode_frame(user_data: bytes, escape_fcs: bool = True) -> bytes:
    """One wire frame around ``user_data`` (as the monitor sends it: FCS escaped too)."""
    body = struct.pack(">BBH", HDR_PROTOCOL, HDR_MSG_TYPE, len(user_data)) + user_data
    fcs = struct.pack("<H", fcs16(body))
    if escape_fcs:
        return b"\xc0" + escape(body + fcs) + b"\xc1"
    return b"\xc0" + escape(body) + fcs + b"\xc1"


class Deframer:
    """Sans-IO frame extractor with bounded buffer and counted rejections."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.max_frame = max_frame
        self.max_buffer = 2 * (max_frame + 8) + 64
        self.frames = 0
        self.bad_frames = 0
        self.discarded_bytes = 0
        self._buf = b""
        self._in_junk = False

    def _junk(self, n: int) -> None:
        """Bytes outside any frame: one bad frame per contiguous region, however it is split."""
        if n <= 0:
            return
        if not self._in_junk:
            self.bad_frames += 1
            self._in_junk = True
        self.discarded_bytes += n

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf + data if self._buf else bytes(data)
        out: list[bytes] = []
        pos = 0
        n = len(buf)
        while True:
            start = buf.find(b"\xc0", pos)
            if start < 0:
                self._junk(n - pos)
                pos = n
                break
            if start > pos:
                self._junk(start - pos)
            self._in_junk = False
            end = buf.find(b"\xc1", start + 1)
            if end < 0:
                pos = start
                if n - start > 2 * (self.max_frame + 8):  # no end in sight: drop and resync later
                    self.bad_frames += 1
                    nxt = buf.find(b"\xc0", start + 1)
                    drop_to = nxt if nxt > 0 else n
                    self.discarded_bytes += drop_to - start
                    pos = drop_to
                    continue
                break
            payload, consumed = self._frame(buf, start, end)
            if payload is None:
                if consumed < 0:  # may still be completed by bytes not yet received
                    pos = start
                    break
                self.bad_frames += 1
                nxt = buf.find(b"\xc0", start + 1)
                if nxt < 0 or nxt > end:
                    self.discarded_bytes += end + 1 - start
                    pos = end + 1
                else:
                    self.discarded_bytes += nxt - start
                    pos = nxt
                continue
            self.frames += 1
            out.append(payload)
            pos = consumed
        self._buf = buf[pos:] if pos < n else b""
        if len(self._buf) > self.max_buffer:
            self.discarded_bytes += len(self._buf) - self.max_buffer
            self._buf = self._buf[-self.max_buffer :]
        return out

    def _frame(self, buf: bytes, start: int, end: int) -> tuple[bytes | None, int]:
        """Validate the frame at buf[start..end]; (payload, next pos) or (None, 0 bad / -1 incomplete).

        Tries the FCS escaped (as the guide says) and raw (as VSCaptureMP sends it); a raw
        0xC1 in the FCS ends the frame early, so a short frame is extended to the next 0xC1.
        """
        for _attempt in range(3):
            seg = buf[start + 1 : end]
            short = False
            for body in (unescape(seg), _raw_fcs(seg)):
                if body is None or len(body) < 6 or body[0] != HDR_PROTOCOL:
                    continue
                length = (body[2] << 8) | body[3]
                if length > self.max_frame:
                    return None, 0
                want = 4 + length + 2
                if len(body) == want:
                    if fcs16(body[:-2]) == body[-2] | (body[-1] << 8):
                        return body[4:-2], end + 1
                elif 0 < want - len(body) <= 2:
                    short = True
            if not short:
                return None, 0
            nxt = buf.find(b"\xc1", end + 1, end + 4)
            if nxt < 0:
                return (None, -1) if len(buf) - end <= 3 else (None, 0)
            end = nxt
        return None, 0


def _raw_fcs(seg: bytes) -> bytes | None:
    """The frame body if the last two bytes are an unescaped FCS."""
    if len(seg) < 2:
        return None
    head = unescape(seg[:-2])
    return None if head is None else head + seg[-2:]
