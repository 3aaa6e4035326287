"""``wasi:filesystem/types`` and ``wasi:filesystem/preopens`` over the implementation.

The interface the implementations serve is already shaped like these two
(:mod:`virtwasi.filesystem.interface`), so most functions are one call of the
implementation ``ctx.imports["wasi"]`` with their values translated: flags as sets of names,
enums as case names, stats as records, failures as ``error-code`` names taken from
:class:`~virtwasi.filesystem.errors.ErrorCode`. ``descriptor`` and
``directory-entry-stream`` are the implementation's own types: the handles the component
holds are the ones the implementation made, in the component's table.

What only 0.2 has lives here: streams over a descriptor (``read-via-stream`` and the
others), each keeping its own position, and the read that answers whether it reached the
end. A stream names its descriptor by its index in the component's table, as the
component itself does, and releases nothing of it when dropped. wasmtime's stream keeps
the file open after its descriptor is dropped; here a stream whose descriptor was dropped
traps at its next read or write (found by the index coming back from an open), rather than
reaching whatever file the index names by then.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from ..component.hosting import HostInterface
from ..component.values import Err, Ok, Trap, Variant
from ..filesystem.errors import ErrorCode, FsError, code_of
from ..filesystem.interface import (
    DESCRIPTOR,
    NOW,
    STREAM,
    Advice,
    DescriptorFlags,
    NewTimestamp,
    OpenFlags,
    PathFlags,
    open_mode,
)
from ..storage.base import FileKind, Stat
from ..world import Context, ResourceType
from .clocks import datetime_or_none, nanoseconds
from .io import FAILURES, InputStream, Io, OutputStream, filled

# descriptor-type by the storage's kind; wasmtime reports a FIFO and a socket as unknown.
TYPE_NAMES: dict[FileKind, str] = {
    FileKind.REGULAR: "regular-file",
    FileKind.DIRECTORY: "directory",
    FileKind.SYMLINK: "symbolic-link",
    FileKind.CHARACTER_DEVICE: "character-device",
    FileKind.BLOCK_DEVICE: "block-device",
    FileKind.SOCKET: "unknown",
    FileKind.FIFO: "unknown",
    FileKind.UNKNOWN: "unknown",
}


def _wit_names(members: Any) -> dict[str, int]:
    """A flags or enum type of the interface by its WIT case names (``will-need``)."""
    return {m.name.lower().replace("_", "-"): int(m) for m in members}


PATH_FLAGS = _wit_names(PathFlags)
OPEN_FLAGS = _wit_names(OpenFlags)
DESCRIPTOR_FLAGS = _wit_names(DescriptorFlags)
ADVICE = _wit_names(Advice)


def bits(names: set[str], table: Mapping[str, int]) -> int:
    return sum(table[name] for name in names)


def flag_names(value: int, table: Mapping[str, int]) -> set[str]:
    return {name for name, bit in table.items() if value & bit}


def new_timestamp(given: Variant) -> NewTimestamp:
    if given.case == "no-change":
        return None
    if given.case == "now":
        return NOW
    return nanoseconds(given.value)


def stat_record(st: Stat) -> dict[str, Any]:
    return {
        "type": TYPE_NAMES[st.kind],
        "link-count": st.nlink,
        "size": st.size,
        "data-access-timestamp": datetime_or_none(st.atime_ns),
        "data-modification-timestamp": datetime_or_none(st.mtime_ns),
        "status-change-timestamp": datetime_or_none(st.ctime_ns),
    }


def attempt(call: Callable[..., Any], *args: Any) -> Ok | Err:
    """``call(*args)`` as ``result<_, error-code>``."""
    try:
        return Ok(call(*args))
    except FAILURES as exc:
        return Err(code_of(exc).wit_name)


class FileStream:
    """A stream over a descriptor: its index in the component's table and the position
    it reads or writes at (None: it appends)."""

    def __init__(self, files: Filesystem, handle: int, position: int | None) -> None:
        self.files = files
        self.handle = handle
        self.position = position
        self.gone = False

    def descriptor(self) -> int:
        if self.gone:
            raise Trap(f"the descriptor of this stream (handle {self.handle}) was dropped "
                       "before the stream")
        return self.handle

    def release(self) -> None:
        self.files.forget(self)


class FileInput(FileStream, InputStream):
    def take(self, size: int) -> bytes | bytearray:
        assert self.position is not None
        buf = bytearray(size)
        count: int = self.files.read(self.descriptor(), memoryview(buf), self.position)
        self.position += count
        return filled(buf, count)


class FileOutput(FileStream, OutputStream):
    deferred = True  # a failed write is reported by the next check-write, as in wasmtime

    def put(self, data: bytes | bytearray) -> None:
        view = memoryview(data)
        while view:
            if self.position is None:
                count: int = self.files.append(self.descriptor(), view)
            else:
                count = self.files.write(self.descriptor(), view, self.position)
                self.position += count
            if not count:
                raise FsError(ErrorCode.IO, "the file took no byte")
            view = view[count:]


Stream = TypeVar("Stream", bound=FileStream)


class Filesystem:
    """The two interfaces for one component instance over ``ctx.imports["wasi"]``."""

    def __init__(self, ctx: Context, io: Io) -> None:
        self.ctx = ctx
        self.io = io
        wasi = self.wasi = ctx.imports["wasi"]
        descriptor, listing = wasi[DESCRIPTOR], wasi[STREAM]
        assert isinstance(descriptor, ResourceType) and isinstance(listing, ResourceType)
        self.descriptor, self.listing = descriptor, listing
        # Bound once, as the preview 1 adapter binds them: the calls streams make often.
        self.read = wasi.read.lowered
        self.write = wasi.write.lowered
        self.append = wasi.append.lowered
        self._get_type = wasi.get_type.lowered
        self._open_at = wasi.open_at.lowered
        self._streams_on: dict[int, list[FileStream]] = {}

    # -- streams and the descriptors they name ---------------------------------------------
    def _stream(self, stream: Stream) -> Stream:
        self._streams_on.setdefault(stream.handle, []).append(stream)
        return stream

    def forget(self, stream: FileStream) -> None:
        """A stream was dropped: its descriptor no longer needs watching for it."""
        streams = self._streams_on.get(stream.handle)
        if streams is not None and stream in streams:
            streams.remove(stream)
            if not streams:
                del self._streams_on[stream.handle]

    def _issued(self, handle: int) -> int:
        """A descriptor handle the component just received: any stream still naming that
        index named a descriptor the component dropped, whose index was free to reuse."""
        for stream in self._streams_on.pop(handle, ()):
            stream.gone = True
        return handle

    def read_via_stream(self, d: int, offset: int) -> Ok | Err:
        kind = attempt(self._get_type, d)
        if isinstance(kind, Err):
            return kind
        if kind.value is FileKind.DIRECTORY:
            return Err("is-directory")
        stream = self._stream(FileInput(self, d, offset))
        return Ok(self.io.new_input(stream))

    def _output(self, d: int, position: int | None) -> Ok | Err:
        kind = attempt(self._get_type, d)
        if isinstance(kind, Err):
            return kind
        if kind.value is FileKind.DIRECTORY:
            return Err("bad-descriptor")
        stream = self._stream(FileOutput(self, d, position))
        return Ok(self.io.new_output(stream))

    # -- the descriptor ---------------------------------------------------------------------
    def read_at(self, d: int, length: int, offset: int) -> Ok | Err:
        buf = bytearray(min(length, 64 * 1024))  # at most wasmtime's one allocation
        count = attempt(self.read, d, memoryview(buf), offset)
        if isinstance(count, Err):
            return count
        return Ok((filled(buf, count.value), count.value == 0))

    def open_at(self, d: int, path_flags: set[str], path: str, open_flags: set[str],
                flags: set[str]) -> Ok | Err:
        asked = bits(open_flags, OPEN_FLAGS)
        opened = attempt(self._open_at, d, bits(path_flags, PATH_FLAGS), path, asked,
                         open_mode(asked, bits(flags, DESCRIPTOR_FLAGS)))
        return opened if isinstance(opened, Err) else Ok(self._issued(opened.value[0]))

    def get_directories(self) -> list[tuple[int, str]]:
        return [(self._issued(self.wasi.preopen(index)), guest)
                for index, guest in enumerate(self.wasi.preopen_paths())]

    def filesystem_error_code(self, error: int) -> str | None:
        cause = self.io.cause(error)
        return code_of(cause).wit_name if isinstance(cause, FsError | OSError) else None

    def interfaces(self) -> dict[str, HostInterface]:
        wasi = self.wasi

        def call(name: str, convert: Callable[[Any], Any] | None = None
                 ) -> Callable[..., Ok | Err]:
            """The implementation's ``name`` as a function answering a result."""
            lowered = wasi[name].lowered  # type: ignore[union-attr]
            if convert is None:
                return lambda *args: attempt(lowered, *args)

            def converted(*args: Any) -> Ok | Err:
                try:
                    found = lowered(*args)
                except FAILURES as exc:
                    return Err(code_of(exc).wit_name)
                return Ok(convert(found))

            return converted

        stat, stat_at, hash_at = call("stat", stat_record), call("stat_at", stat_record), \
            call("metadata_hash_at", _hash_record)
        set_times, set_times_at, link_at = call("set_times"), call("set_times_at"), \
            call("link_at")
        advise = call("advise")
        listing_entry = call("read_directory_entry", _entry_record)
        method = "[method]descriptor."
        funcs: dict[str, Callable[..., Any]] = {
            method + "read-via-stream": self.read_via_stream,
            method + "write-via-stream": lambda d, offset: self._output(d, offset),
            method + "append-via-stream": lambda d: self._output(d, None),
            method + "advise": lambda d, offset, length, advice: advise(
                d, offset, length, ADVICE[advice]),
            method + "sync-data": call("sync_data"),
            method + "get-flags": call("get_flags", lambda f: flag_names(f, DESCRIPTOR_FLAGS)),
            method + "get-type": call("get_type", TYPE_NAMES.__getitem__),
            method + "set-size": call("set_size"),
            method + "set-times": lambda d, atime, mtime: set_times(
                d, new_timestamp(atime), new_timestamp(mtime)),
            method + "read": self.read_at,
            method + "write": lambda d, buffer, offset: attempt(
                self.write, d, memoryview(buffer), offset),
            method + "read-directory": call("read_directory"),
            method + "sync": call("sync"),
            method + "create-directory-at": call("create_directory_at"),
            method + "stat": stat,
            method + "stat-at": lambda d, flags, path: stat_at(
                d, bits(flags, PATH_FLAGS), path),
            method + "set-times-at": lambda d, flags, path, atime, mtime: set_times_at(
                d, bits(flags, PATH_FLAGS), path, new_timestamp(atime), new_timestamp(mtime)),
            method + "link-at": lambda d, flags, old, new_d, new: link_at(
                d, bits(flags, PATH_FLAGS), old, new_d, new),
            method + "open-at": self.open_at,
            method + "readlink-at": call("readlink_at"),
            method + "remove-directory-at": call("remove_directory_at"),
            method + "rename-at": call("rename_at"),
            method + "symlink-at": call("symlink_at"),
            method + "unlink-file-at": call("unlink_file_at"),
            method + "is-same-object": wasi.is_same_object.lowered,
            method + "metadata-hash": call("metadata_hash", _hash_record),
            method + "metadata-hash-at": lambda d, flags, path: hash_at(
                d, bits(flags, PATH_FLAGS), path),
            "[method]directory-entry-stream.read-directory-entry": listing_entry,
            "filesystem-error-code": self.filesystem_error_code,
        }
        io = self.io
        types = {"descriptor": self.descriptor, "directory-entry-stream": self.listing,
                 "input-stream": io.input_stream, "output-stream": io.output_stream,
                 "error": io.error}
        return {
            "wasi:filesystem/types": HostInterface(funcs, types),
            "wasi:filesystem/preopens": HostInterface(
                {"get-directories": self.get_directories}, {"descriptor": self.descriptor}),
        }


def _hash_record(value: tuple[int, int]) -> dict[str, int]:
    lower, upper = value
    return {"lower": lower, "upper": upper}


def _entry_record(entry: Any) -> dict[str, str] | None:
    return None if entry is None else {"type": TYPE_NAMES[entry.kind], "name": entry.name}
