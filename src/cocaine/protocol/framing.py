"""Frames: the stream decoder (bytes in, frames out) and the encoder (frames in, bytes out).

A connection carries concatenated msgpack values with no length prefix. Each value is one frame,
``[channel, type, args]`` or ``[channel, type, args, headers]``. Every string is decoded as
``bytes`` (old-spec raw, ``str8`` and ``bin`` alike) and every string goes out as old-spec raw.

Size limits are enforced on declared lengths as well as on buffered bytes: a frame whose array,
map or string header announces more than the limit is refused as soon as that header arrives,
before any of its bytes do. After an error the decoder stays broken (the connection must close).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, Final, NamedTuple

import msgpack

from cocaine.errors import Transport, TransportError

DEFAULT_MAX_FRAME_SIZE: Final = 64 * 1024 * 1024


class Frame(NamedTuple):
    channel: int
    type: int
    args: list[Any]
    headers: list[Any]


RawFrame = tuple[int, int, list[Any], list[Any]]


def _check(obj: Any) -> RawFrame:
    if type(obj) is list and len(obj) == 4:  # the common shape, checked inline
        channel, mtype, args, headers = obj
        if (
            type(channel) is int
            and type(mtype) is int
            and channel >= 0
            and mtype >= 0
            and type(args) is list
            and type(headers) is list
        ):
            return (channel, mtype, args, headers)
    if not isinstance(obj, list) or len(obj) < 3:
        raise TransportError(
            "a frame must be an array of 3 or 4 elements", code=Transport.FRAME_FORMAT
        )
    channel, mtype, args = obj[0], obj[1], obj[2]
    if type(channel) is not int or type(mtype) is not int or channel < 0 or mtype < 0:
        raise TransportError("frame channel and type must be unsigned integers")
    if not isinstance(args, list):
        raise TransportError("frame args must be an array")
    headers = obj[3] if len(obj) > 3 else []
    if not isinstance(headers, list):
        raise TransportError("frame headers must be an array")
    return (channel, mtype, args, headers)


class FrameDecoder:
    """Feed bytes, get whole frames. Broken for good after the first error."""

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self.max_frame_size = max_frame_size
        limit = max_frame_size
        self._unpacker = msgpack.Unpacker(
            raw=True,
            strict_map_key=False,
            use_list=True,
            max_buffer_size=0,  # the frame limit is enforced per frame below
            max_str_len=limit,
            max_bin_len=limit,
            max_array_len=limit,
            max_map_len=limit,
            max_ext_len=limit,
        )
        self._fed = 0
        self._frame_end = 0  # stream offset just past the last complete frame
        self._tail = bytearray()  # bytes of the frame still incomplete
        self._scan = _HeaderScan(limit)
        self._error: TransportError | None = None

    @property
    def pending(self) -> int:
        """Bytes buffered for a frame that has not completed yet."""
        return len(self._tail)

    def feed(self, data: bytes) -> list[Frame]:
        """Whole frames from ``data`` (and what came before it), as :class:`Frame` tuples."""
        return [Frame._make(frame) for frame in self.feed_raw(data)]

    def feed_raw(self, data: bytes) -> list[RawFrame]:
        """As :meth:`feed`, as plain tuples ``(channel, type, args, headers)``: the hot path."""
        if self._error is not None:
            raise self._error
        try:
            return self._feed(data)
        except TransportError as exc:
            self._error = exc
            raise
        except msgpack.exceptions.BufferFull:
            self._error = _too_large(self.max_frame_size)
        except (ValueError, msgpack.exceptions.ExtraData, msgpack.exceptions.FormatError) as exc:
            self._error = TransportError(f"malformed msgpack: {exc}", code=Transport.PARSE)
        except Exception as exc:  # StackError and friends from the C unpacker
            self._error = TransportError(f"malformed msgpack: {exc!r}", code=Transport.PARSE)
        raise self._error

    def _feed(self, data: bytes) -> list[RawFrame]:
        unpacker = self._unpacker
        unpacker.feed(data)
        self._fed += len(data)
        frames = []
        limit = self.max_frame_size
        frame_end = self._frame_end
        for obj in unpacker:
            end = unpacker.tell()
            if end - frame_end > limit:
                raise _too_large(limit)
            frames.append(_check(obj))
            frame_end = self._frame_end = end
        remaining = self._fed - self._frame_end
        if remaining > limit:
            raise _too_large(limit)
        if remaining == 0:
            if self._tail:
                self._tail = bytearray()
            self._scan.reset()
            return frames
        if frames or (remaining <= len(data) and not self._tail):
            # a new frame started inside this chunk
            self._tail = bytearray(data[len(data) - remaining :])
            self._scan.reset()
        else:
            self._tail += data
        self._scan.advance(self._tail)
        return frames


def _too_large(limit: int) -> TransportError:
    return TransportError(f"frame exceeds the limit of {limit} bytes", code=Transport.PARSE)


class _HeaderScan:
    """Walks the headers of an incomplete frame to refuse oversized declared lengths early.

    It runs only when a frame is still incomplete after a feed, resumes where it stopped, and
    jumps over string bodies, so its cost is proportional to the number of items, not bytes.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.reset()

    def reset(self) -> None:
        self._offset = 0
        self._stack: list[int] = [1]  # items still expected at each nesting level

    def advance(self, buf: bytearray) -> None:
        limit = self.limit
        while self._stack:
            pos = self._offset
            if pos >= len(buf):
                return
            b = buf[pos]
            need, children = _item_size(buf, pos, b)
            if need < 0:
                return  # header incomplete
            if need - (1 if b <= 0x7F or b >= 0xE0 else 0) > limit or children > limit:
                raise TransportError(
                    f"declared length exceeds the frame limit of {limit} bytes",
                    code=Transport.PARSE,
                )
            if pos + need > len(buf):
                return  # body incomplete; its length was checked
            self._stack[-1] -= 1
            if children:
                self._stack.append(children)
            self._offset = pos + need
            while self._stack and self._stack[-1] == 0:
                self._stack.pop()


_FIXED = {
    0xC0: 1,
    0xC2: 1,
    0xC3: 1,
    0xCA: 5,
    0xCB: 9,
    0xCC: 2,
    0xCD: 3,
    0xCE: 5,
    0xCF: 9,
    0xD0: 2,
    0xD1: 3,
    0xD2: 5,
    0xD3: 9,
    0xD4: 3,
    0xD5: 4,
    0xD6: 6,
    0xD7: 10,
    0xD8: 18,
}
_LEN = {
    0xC4: (1, "B"),
    0xC5: (2, ">H"),
    0xC6: (4, ">I"),
    0xD9: (1, "B"),
    0xDA: (2, ">H"),
    0xDB: (4, ">I"),
    0xC7: (1, "B"),
    0xC8: (2, ">H"),
    0xC9: (4, ">I"),
}
_CONTAINER = {0xDC: (2, ">H", 1), 0xDD: (4, ">I", 1), 0xDE: (2, ">H", 2), 0xDF: (4, ">I", 2)}


def _item_size(buf: bytearray, pos: int, b: int) -> tuple[int, int]:
    """(bytes of this item excluding children, number of child items); (-1, 0) if unknown yet."""
    if b <= 0x7F or b >= 0xE0:
        return 1, 0
    if 0x80 <= b <= 0x8F:
        return 1, 2 * (b & 0x0F)
    if 0x90 <= b <= 0x9F:
        return 1, b & 0x0F
    if 0xA0 <= b <= 0xBF:
        return 1 + (b & 0x1F), 0
    if b in _FIXED:
        return _FIXED[b], 0
    if b in _LEN:
        width, fmt = _LEN[b]
        if pos + 1 + width > len(buf):
            return -1, 0
        (n,) = struct.unpack_from(fmt, buf, pos + 1)
        extra = 1 if b in (0xC7, 0xC8, 0xC9) else 0  # ext type byte
        return 1 + width + extra + n, 0
    if b in _CONTAINER:
        width, fmt, mult = _CONTAINER[b]
        if pos + 1 + width > len(buf):
            return -1, 0
        (n,) = struct.unpack_from(fmt, buf, pos + 1)
        return 1 + width, n * mult
    raise TransportError(f"invalid msgpack type byte 0x{b:02x}", code=Transport.PARSE)


_packer: Final = msgpack.Packer(use_bin_type=False, autoreset=True)
_pack: Final = _packer.pack


def pack(obj: Any) -> bytes:
    """Pack one value in the wire dialect (old-spec raw strings, no bin)."""
    return _pack(obj)


def encode_frame(
    channel: int, mtype: int, args: Sequence[Any], headers: Sequence[Any] = ()
) -> bytes:
    """A 4-element frame. ``headers`` are already-encoded header entries."""
    if not headers and len(args) == 1 and type(args[0]) is bytes:  # a chunk: no re-copy
        chunk: bytes = args[0]
        return b"".join(
            (b"\x94", _uint(channel), _uint(mtype), _one_raw(len(chunk)), chunk, b"\x90")
        )
    return _pack([channel, mtype, args, headers])


def encode_frame_packed_headers(
    channel: int, mtype: int, args: Sequence[Any], packed_headers: bytes
) -> bytes:
    """A 4-element frame whose headers array was packed once in advance (the hot path)."""
    if len(args) == 1 and type(args[0]) is bytes:
        chunk: bytes = args[0]
        ch, mt = _uint(channel), _uint(mtype)
        return b"".join((b"\x94", ch, mt, _one_raw(len(chunk)), chunk, packed_headers))
    return b"".join((b"\x94", _uint(channel), _uint(mtype), _pack(args), packed_headers))


def encode_stream(
    channel: int,
    first: tuple[int, Sequence[Any], bytes],
    write: int,
    chunk: bytes,
    close: int,
    packed_headers: bytes,
) -> bytes:
    """Three frames on one channel in one step: ``first`` (type, args, its packed headers),
    ``write [chunk]`` and ``close []``, the last two with ``packed_headers``."""
    mtype, args, first_headers = first
    ch = _uint(channel)
    return b"".join(
        (
            b"\x94", ch, _uint(mtype), _pack(args), first_headers,
            b"\x94", ch, _uint(write), _one_raw(len(chunk)), chunk, packed_headers,
            b"\x94", ch, _uint(close), b"\x90", packed_headers,
        )
    )  # fmt: skip


def _uint(value: int) -> bytes:
    return _FIXINT[value] if 0 <= value < 128 else _pack(value)


def _one_raw(size: int) -> bytes:
    """The head of ``[raw]`` for a raw string of ``size`` bytes: the chunk itself is not copied
    into the packer (fixstr, str16 or str32, as the packer writes them)."""
    if size < 32:
        return _ONE_FIXSTR[size]
    if size < 0x10000:
        return b"\x91\xda" + size.to_bytes(2, "big")
    return b"\x91\xdb" + size.to_bytes(4, "big")


_ONE_FIXSTR: Final[tuple[bytes, ...]] = tuple(bytes((0x91, 0xA0 | n)) for n in range(32))
_FIXINT: Final[tuple[bytes, ...]] = tuple(bytes((i,)) for i in range(128))  # positive fixints


def encode_frame3(channel: int, mtype: int, args: Sequence[Any]) -> bytes:
    """A 3-element frame, as v12 workers of the original framework send."""
    return _pack([channel, mtype, args])


__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "Frame",
    "FrameDecoder",
    "RawFrame",
    "encode_frame",
    "encode_frame3",
    "encode_frame_packed_headers",
    "encode_stream",
    "pack",
]
