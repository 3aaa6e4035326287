"""The component binary's primitives: the preamble, LEB128 integers, names, and the errors.

Every read goes through :class:`ByteReader`, a cursor bounded by an end offset, so a
truncated or corrupt binary is one :class:`MalformedBinary` naming the byte offset where
reading stopped, never an ``IndexError``. Offsets are counted from the start of the whole
file, nested components included.
"""

from __future__ import annotations

import enum
from typing import Final

MAGIC: Final = b"\x00asm"
CORE_VERSION: Final = b"\x01\x00\x00\x00"
# The component preamble: a pre-standard version, then the layer that tells it from a module.
COMPONENT_VERSION: Final = b"\x0d\x00\x01\x00"


class ComponentReadError(ValueError):
    """A binary that virtwasi cannot read as a component; the message is one line."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        self.offset = offset
        self.detail = message
        super().__init__(message if offset is None else f"at byte {offset}: {message}")


class MalformedBinary(ComponentReadError):
    """The bytes break the format: truncated, corrupt, an unknown opcode, a bad index."""


class UnsupportedFeature(ComponentReadError):
    """A well-formed construct that virtwasi does not handle yet (async, streams, values...)."""

    def __init__(self, feature: str, offset: int | None = None) -> None:
        self.feature = feature
        super().__init__(f"{feature} is not supported yet", offset)


class WasmKind(enum.Enum):
    """What a ``.wasm`` file holds, told by its first eight bytes."""

    MODULE = "core module"
    COMPONENT = "component"


def wasm_kind(data: bytes) -> WasmKind:
    """A core module or a component, from the preamble alone (no other byte is read)."""
    head = bytes(data[:8])
    if len(head) < 8 or head[:4] != MAGIC:
        raise MalformedBinary("not a wasm binary (no \\0asm preamble)", 0)
    if head[4:] == CORE_VERSION:
        return WasmKind.MODULE
    if head[4:] == COMPONENT_VERSION:
        return WasmKind.COMPONENT
    if head[6:] == b"\x01\x00":
        version = int.from_bytes(head[4:6], "little")
        raise UnsupportedFeature(f"component binary version {version:#x} (only 0xd)", 4)
    raise MalformedBinary(f"unknown wasm version or layer {head[4:].hex()}", 4)


class ByteReader:
    """A cursor over ``data[offset:end]``; every read checks the bound first."""

    __slots__ = ("data", "end", "offset")

    def __init__(self, data: bytes, offset: int = 0, end: int | None = None) -> None:
        self.data = data
        self.offset = offset
        self.end = len(data) if end is None else end

    @property
    def remaining(self) -> int:
        return self.end - self.offset

    def at_end(self) -> bool:
        return self.offset >= self.end

    def malformed(self, message: str, offset: int | None = None) -> MalformedBinary:
        return MalformedBinary(message, self.offset if offset is None else offset)

    def unsupported(self, feature: str, offset: int | None = None) -> UnsupportedFeature:
        return UnsupportedFeature(feature, self.offset if offset is None else offset)

    def _need(self, count: int, what: str) -> None:
        if count > self.end - self.offset:
            raise self.malformed(f"unexpected end of {what}")

    def byte(self, what: str = "data") -> int:
        offset = self.offset
        if offset >= self.end:
            raise self.malformed(f"unexpected end of {what}")
        self.offset = offset + 1
        return self.data[offset]

    def peek(self, what: str = "data") -> int:
        self._need(1, what)
        return self.data[self.offset]

    def bytes(self, count: int, what: str = "data") -> bytes:
        self._need(count, what)
        start = self.offset
        self.offset += count
        return self.data[start:self.offset]

    def u32(self, what: str = "integer") -> int:
        """An unsigned LEB128 of at most 5 bytes whose value fits 32 bits."""
        start = self.offset
        if start < self.end and self.data[start] < 0x80:  # most are one byte
            self.offset = start + 1
            return self.data[start]
        result = 0
        for shift in range(0, 35, 7):
            value = self.byte(what)
            result |= (value & 0x7F) << shift
            if not value & 0x80:
                if shift == 28 and value & 0x70:
                    raise self.malformed(f"{what} does not fit 32 bits", start)
                return result
        raise self.malformed(f"{what} is longer than 5 bytes", start)

    def u64(self, what: str = "integer") -> int:
        """An unsigned LEB128 of at most 10 bytes whose value fits 64 bits."""
        start = self.offset
        result = 0
        for shift in range(0, 70, 7):
            value = self.byte(what)
            result |= (value & 0x7F) << shift
            if not value & 0x80:
                if shift == 63 and value & 0x7E:
                    raise self.malformed(f"{what} does not fit 64 bits", start)
                return result
        raise self.malformed(f"{what} is longer than 10 bytes", start)

    def s33(self, what: str = "type") -> int:
        """A signed LEB128 of at most 5 bytes, the encoding of type codes and type indices."""
        start = self.offset
        if start < self.end and self.data[start] < 0x80:  # a type code or a small index
            self.offset = start + 1
            value = self.data[start]
            return value - 0x80 if value & 0x40 else value
        result = 0
        for shift in range(0, 35, 7):
            value = self.byte(what)
            result |= (value & 0x7F) << shift
            if not value & 0x80:
                # In a fifth byte, bits 33 and 34 must repeat the sign (bit 32).
                if shift == 28 and (value & 0x60) != (0x60 if value & 0x10 else 0):
                    raise self.malformed(f"{what} does not fit 33 bits", start)
                if value & 0x40:
                    result -= 1 << (shift + 7)
                return result
        raise self.malformed(f"{what} is longer than 5 bytes", start)

    def count(self, what: str) -> int:
        """A vector's length, refused at once when even one byte an item would overrun."""
        start = self.offset
        n = self.u32(f"{what} count")
        if n > self.remaining:
            raise self.malformed(f"{what} count {n} exceeds the {self.remaining} bytes left",
                                 start)
        return n

    def name(self, what: str = "name") -> str:
        start = self.offset
        size = self.u32(f"{what} length")
        raw = self.bytes(size, what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.malformed(f"{what} is not valid UTF-8", start) from None

    def flag(self, what: str) -> bool:
        """The ``0x00 | 0x01`` of an optional immediate."""
        start = self.offset
        value = self.byte(what)
        if value > 1:
            raise self.malformed(f"{what}: expected 0x00 or 0x01, found {value:#04x}", start)
        return value == 1

    def sub(self, size: int, what: str) -> ByteReader:
        """A reader over the next ``size`` bytes (a section's body); this one skips them."""
        self._need(size, what)
        inner = ByteReader(self.data, self.offset, self.offset + size)
        self.offset += size
        return inner

    def expect_end(self, what: str) -> None:
        if self.offset != self.end:
            raise self.malformed(f"{self.end - self.offset} unread bytes at the end of {what}")
