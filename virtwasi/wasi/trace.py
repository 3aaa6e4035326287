"""A trace of the preview 1 calls a guest makes: strace for WASI.

A :class:`Tracer` wraps each ``wasi_snapshot_preview1`` import of a client (see
:meth:`Tracer.wrap`) and writes one line per call: its name, its arguments decoded (fds as
numbers, paths read from guest memory, flags and enums by name, iovec arrays as their total
length and count), its answer (``0`` with the outputs worth showing, an errno by name, an
exit, a trap) and the time the call took. Text, as ``virtwasi run --trace`` prints it::

    path_open(fd=3, dirflags=SYMLINK_FOLLOW, path="a/f.txt", oflags=CREAT|TRUNC, ...
              ) = 0 (fd=4) <41.2us>
    fd_write(fd=1, iovs=(13 bytes, 1 iovec)) = 0 (nwritten=13) <9.0us>
    path_open(fd=3, dirflags=SYMLINK_FOLLOW, path="nope", ...) = ENOENT <20.5us>
    proc_exit(code=0) = exit(0) <2.1us>

or JSON lines (``format="json"``): ``{"call": ..., "args": {...}, "result": 0, "out": {...},
"us": 41.2}``, with ``"errno": "ENOENT"`` beside the result for an error, and ``"exit"`` or
``"trap"`` in place of the result.

Tracing never changes what the guest sees: the wrapper calls the adapter's own method with
the same arguments and lets whatever it returns or raises through untouched, so the engine
answers exactly as it does untraced. Decoding only reads guest memory, through its own
bounds checks; a pointer out of bounds is shown as such (``<bad address 0x...+N>``), never
followed. Strings are read before the call (the guest may reuse the memory afterwards),
outputs after, and only when the call succeeded.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import struct
import sys
import time
from collections.abc import Callable
from typing import IO, Any, Literal, TypeAlias

from .abi import (
    ALL_RIGHTS,
    FDSTAT,
    FILESTAT,
    IMPORTS,
    IOVEC,
    PRESTAT,
    U16,
    U32,
    U64,
    Advice,
    Clockid,
    Errno,
    Fdflags,
    Filetype,
    Fstflags,
    Lookupflags,
    Oflags,
    Riflags,
    Rights,
    Sdflags,
    Whence,
)
from .common import ProcExit
from .errnos import errno_name

TraceFormat = Literal["text", "json"]
FORMATS: tuple[TraceFormat, ...] = ("text", "json")

MAX_STRING = 200  # bytes of a path shown before it is cut short
MAX_IOVECS = 1024  # iovec entries summed before the total is left unknown

# -- what each import's arguments are ---------------------------------------------------
# Kinds of argument. Each takes one raw argument, except PATH and IOVS (pointer, length)
# and LINK (buffer, buffer length, pointer to the length used). Outputs (OUT_*) are
# pointers the call writes through: shown after the call, as what it wrote.
FD = "fd"
NUM = "num"
PTR = "ptr"
PATH = "path"
IOVS = "iovs"
OUT_U16 = "out_u16"
OUT_U32 = "out_u32"
OUT_U64 = "out_u64"
OUT_FDSTAT = "out_fdstat"
OUT_FILESTAT = "out_filestat"
OUT_PRESTAT = "out_prestat"
OUT_NAME = "out_name"  # (buffer, length): a name the call fills in
LINK = "link"  # path_readlink's (buffer, length, used): the target

Kind = str | type[enum.IntFlag] | type[enum.IntEnum]
Param = tuple[str, Kind]

_WIDTH = {PATH: 2, IOVS: 2, OUT_NAME: 2, LINK: 3}

SIGNATURES: dict[str, tuple[Param, ...]] = {
    "args_get": (("argv", PTR), ("argv_buf", PTR)),
    "args_sizes_get": (("count", OUT_U32), ("size", OUT_U32)),
    "environ_get": (("environ", PTR), ("environ_buf", PTR)),
    "environ_sizes_get": (("count", OUT_U32), ("size", OUT_U32)),
    "clock_res_get": (("id", Clockid), ("resolution", OUT_U64)),
    "clock_time_get": (("id", Clockid), ("precision", NUM), ("time", OUT_U64)),
    "fd_advise": (("fd", FD), ("offset", NUM), ("len", NUM), ("advice", Advice)),
    "fd_allocate": (("fd", FD), ("offset", NUM), ("len", NUM)),
    "fd_close": (("fd", FD),),
    "fd_datasync": (("fd", FD),),
    "fd_fdstat_get": (("fd", FD), ("stat", OUT_FDSTAT)),
    "fd_fdstat_set_flags": (("fd", FD), ("flags", Fdflags)),
    "fd_fdstat_set_rights": (("fd", FD), ("rights_base", Rights),
                             ("rights_inheriting", Rights)),
    "fd_filestat_get": (("fd", FD), ("stat", OUT_FILESTAT)),
    "fd_filestat_set_size": (("fd", FD), ("size", NUM)),
    "fd_filestat_set_times": (("fd", FD), ("atim", NUM), ("mtim", NUM),
                              ("fst_flags", Fstflags)),
    "fd_pread": (("fd", FD), ("iovs", IOVS), ("offset", NUM), ("nread", OUT_U32)),
    "fd_prestat_get": (("fd", FD), ("prestat", OUT_PRESTAT)),
    "fd_prestat_dir_name": (("fd", FD), ("name", OUT_NAME)),
    "fd_pwrite": (("fd", FD), ("iovs", IOVS), ("offset", NUM), ("nwritten", OUT_U32)),
    "fd_read": (("fd", FD), ("iovs", IOVS), ("nread", OUT_U32)),
    "fd_readdir": (("fd", FD), ("buf", PTR), ("buf_len", NUM), ("cookie", NUM),
                   ("bufused", OUT_U32)),
    "fd_renumber": (("fd", FD), ("to", FD)),
    "fd_seek": (("fd", FD), ("offset", NUM), ("whence", Whence), ("newoffset", OUT_U64)),
    "fd_sync": (("fd", FD),),
    "fd_tell": (("fd", FD), ("offset", OUT_U64)),
    "fd_write": (("fd", FD), ("iovs", IOVS), ("nwritten", OUT_U32)),
    "path_create_directory": (("fd", FD), ("path", PATH)),
    "path_filestat_get": (("fd", FD), ("flags", Lookupflags), ("path", PATH),
                          ("stat", OUT_FILESTAT)),
    "path_filestat_set_times": (("fd", FD), ("flags", Lookupflags), ("path", PATH),
                                ("atim", NUM), ("mtim", NUM), ("fst_flags", Fstflags)),
    "path_link": (("old_fd", FD), ("old_flags", Lookupflags), ("old_path", PATH),
                  ("new_fd", FD), ("new_path", PATH)),
    "path_open": (("fd", FD), ("dirflags", Lookupflags), ("path", PATH), ("oflags", Oflags),
                  ("rights_base", Rights), ("rights_inheriting", Rights),
                  ("fdflags", Fdflags), ("fd", OUT_U32)),
    "path_readlink": (("fd", FD), ("path", PATH), ("target", LINK)),
    "path_remove_directory": (("fd", FD), ("path", PATH)),
    "path_rename": (("fd", FD), ("old_path", PATH), ("new_fd", FD), ("new_path", PATH)),
    "path_symlink": (("old_path", PATH), ("fd", FD), ("new_path", PATH)),
    "path_unlink_file": (("fd", FD), ("path", PATH)),
    "poll_oneoff": (("in", PTR), ("out", PTR), ("nsubscriptions", NUM),
                    ("nevents", OUT_U32)),
    "proc_exit": (("code", NUM),),
    "proc_raise": (("signal", NUM),),
    "sched_yield": (),
    "random_get": (("buf", PTR), ("buf_len", NUM)),
    "sock_accept": (("fd", FD), ("flags", Fdflags), ("fd", OUT_U32)),
    "sock_recv": (("fd", FD), ("ri_data", IOVS), ("ri_flags", Riflags),
                  ("ro_datalen", OUT_U32), ("ro_flags", OUT_U16)),
    "sock_send": (("fd", FD), ("si_data", IOVS), ("si_flags", NUM), ("so_datalen", OUT_U32)),
    "sock_shutdown": (("fd", FD), ("how", Sdflags)),
}

for _name, _params in SIGNATURES.items():
    assert sum(_WIDTH.get(k, 1) if isinstance(k, str) else 1 for _, k in _params) == len(
        IMPORTS[_name]), _name
assert SIGNATURES.keys() == IMPORTS.keys()

# A decoded value: how the text form shows it, and what the JSON form holds.
Shown = tuple[str, Any]


class _Bad(Exception):
    """A pointer the trace cannot follow (out of bounds, no memory)."""


# -- decoding -------------------------------------------------------------------------------
def _names(value: int, kind: type[enum.IntFlag]) -> str:
    names = [member.name or "" for member in kind if value & member]
    rest = value & ~sum(int(member) for member in kind)
    return "|".join(names + ([hex(rest)] if rest else []))


def _flags(value: int, kind: type[enum.IntFlag]) -> Shown:
    if value == 0:
        text = "0"
    elif kind is Rights and value == ALL_RIGHTS:
        text = hex(value)
    elif kind is Rights and value & ~ALL_RIGHTS == 0 and value.bit_count() > 15:
        # libc asks for nearly every right: name the few missing ones.
        text = f"~({_names(ALL_RIGHTS & ~value, kind)})"
    else:
        text = _names(value, kind)
    return text, text


def _enum(value: int, kind: type[enum.IntEnum]) -> Shown:
    try:
        name = kind(value).name
    except ValueError:
        return str(value), value
    return name, name


def _bad(ptr: int, length: int | None) -> Shown:
    where = f"{ptr:#x}" + ("" if length is None else f"+{length}")
    return f"<bad address {where}>", {"bad_address": ptr, "len": length}


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _quote(raw: bytes) -> str:
    """``raw`` in double quotes, C-style: a byte that is not UTF-8 (or a control) as ``\\xNN``,
    a quote or backslash escaped, everything else as it is."""
    out = ['"']
    for ch in raw.decode("utf-8", "surrogateescape"):
        code = ord(ch)
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif 0xDC80 <= code <= 0xDCFF:  # a byte surrogateescape kept aside
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _string(raw: bytes, length: int) -> Shown:
    text = raw.decode("utf-8", "backslashreplace")
    quoted = _quote(raw)
    if length > len(raw):
        return f"{quoted}... ({length} bytes)", {"prefix": text, "len": length}
    return quoted, text


class _Memory:
    """Reads of guest memory for the trace: copies, bounds-checked, never a write."""

    __slots__ = ("_adapter",)

    def __init__(self, adapter: object) -> None:
        self._adapter = adapter

    def read(self, ptr: int, length: int) -> bytes:
        memory = getattr(self._adapter, "memory", None)
        if memory is None:
            raise _Bad
        try:
            return bytes(memory.window(ptr, length))
        except Exception:  # the memory's own bounds check: an AbiViolation
            raise _Bad from None

    def unpack(self, layout: struct.Struct, ptr: int) -> tuple[Any, ...]:
        return layout.unpack(self.read(ptr, layout.size))

    def string(self, ptr: int, length: int) -> Shown:
        try:
            self.read(ptr + length, 0)  # the whole string must be in bounds
            return _string(self.read(ptr, min(length, MAX_STRING)), length)
        except _Bad:
            return _bad(ptr, length)

    def iovecs(self, ptr: int, count: int) -> Shown:
        total: int | None = None
        if count <= MAX_IOVECS:
            try:
                raw = self.read(ptr, count * IOVEC.size)
            except _Bad:
                return _bad(ptr, count * IOVEC.size)
            total = sum(size for _, size in IOVEC.iter_unpack(raw))
        size = "?" if total is None else total
        return (f"({size} byte{'' if total == 1 else 's'}, {count} iovec"
                f"{'' if count == 1 else 's'})",
                {"bytes": total, "count": count})


def _decode_in(memory: _Memory, params: tuple[Param, ...], args: tuple[int, ...]
               ) -> list[tuple[str, Shown]]:
    shown: list[tuple[str, Shown]] = []
    i = 0
    for name, kind in params:
        value = args[i]
        if kind == PATH:
            shown.append((name, memory.string(value, args[i + 1])))
        elif kind == IOVS:
            shown.append((name, memory.iovecs(value, args[i + 1])))
        elif kind in (OUT_NAME, LINK):  # what the buffer can take; what it got comes after
            shown.append(("buf_len", (str(args[i + 1]), args[i + 1])))
        elif kind == PTR:
            shown.append((name, (hex(value), value)))
        elif kind in (FD, NUM):
            shown.append((name, (str(value), value)))
        elif isinstance(kind, type) and issubclass(kind, enum.IntFlag):
            shown.append((name, _flags(value, kind)))
        elif isinstance(kind, type) and issubclass(kind, enum.IntEnum):
            shown.append((name, _enum(value, kind)))
        i += _WIDTH.get(kind, 1) if isinstance(kind, str) else 1
    return shown


def _decode_out(memory: _Memory, params: tuple[Param, ...], args: tuple[int, ...]
                ) -> list[tuple[str, Shown]]:
    shown: list[tuple[str, Shown]] = []
    i = 0
    for name, kind in params:
        ptr = args[i]
        try:
            if kind in _OUT_INTS:
                layout = _OUT_INTS[kind]
                (value,) = memory.unpack(layout, ptr)
                shown.append((name, (str(value), value)))
            elif kind == OUT_FDSTAT:
                filetype, flags, *_ = memory.unpack(FDSTAT, ptr)
                shown.append(("filetype", _enum(filetype, Filetype)))
                shown.append(("flags", _flags(flags, Fdflags)))
            elif kind == OUT_FILESTAT:
                stat = memory.unpack(FILESTAT, ptr)
                shown.append(("filetype", _enum(stat[2], Filetype)))
                shown.append(("size", (str(stat[4]), stat[4])))
            elif kind == OUT_PRESTAT:
                _, name_len = memory.unpack(PRESTAT, ptr)
                shown.append(("name_len", (str(name_len), name_len)))
            elif kind == OUT_NAME:
                shown.append((name, memory.string(ptr, args[i + 1])))
            elif kind == LINK:
                (used,) = memory.unpack(U32, args[i + 2])
                shown.append((name, memory.string(ptr, min(used, args[i + 1]))))
        except _Bad:
            shown.append((name, _bad(ptr, None)))
        i += _WIDTH.get(kind, 1) if isinstance(kind, str) else 1
    return shown


_OUT_INTS = {OUT_U16: U16, OUT_U32: U32, OUT_U64: U64}
_HAS_OUTPUT = {name for name, params in SIGNATURES.items()
               if any(isinstance(k, str) and (k.startswith("out_") or k == LINK)
                      for _, k in params)}


# -- the tracer ---------------------------------------------------------------------------
class Tracer:
    """Writes one line per preview 1 call of the clients it wraps, to ``target``: a text
    stream (``sys.stderr``, a ``StringIO``) or a path, opened here and written afresh.

    ``format`` is ``"text"`` (strace-like) or ``"json"`` (one JSON object a line). Each line
    is flushed as it is written, so a trace stops exactly where the guest did. A tracer
    opened on a path closes its file when the last client it traces closes (or at
    :meth:`close`). If the trace cannot be written (a full disk, a closed pipe), tracing
    stops with one note on stderr; the guest runs on as it would untraced.
    """

    def __init__(self, target: IO[str] | str | os.PathLike[str],
                 format: TraceFormat = "text") -> None:
        if format not in FORMATS:
            raise ValueError(f"unknown trace format {format!r} (there are: "
                             f"{', '.join(FORMATS)})")
        self.format = format
        self._owned = isinstance(target, str | os.PathLike)
        self.stream: IO[str] = (open(target, "w", encoding="utf-8")  # noqa: SIM115
                                if isinstance(target, str | os.PathLike) else target)
        self._clients = 0
        self.error: BaseException | None = None

    @classmethod
    def of(cls, target: IO[str] | str | os.PathLike[str] | Tracer) -> Tracer:
        """``target`` itself if it is a tracer, else a text tracer writing to it."""
        return target if isinstance(target, Tracer) else cls(target)

    def wrap(self, name: str, fn: Callable[..., int | None], adapter: object,
             answered: tuple[type[BaseException], ...],
             answer: Callable[[BaseException], int]) -> Callable[..., Any]:
        """``fn``, the import ``name`` of ``adapter``, traced. ``answered`` and ``answer``
        are what the engine answers errnos with (only read here, to show the errno)."""
        params = SIGNATURES[name]
        memory = _Memory(adapter)
        outputs = name in _HAS_OUTPUT
        emit = self._emit
        clock = time.perf_counter_ns

        def traced(*args: int) -> int | None:
            try:
                before = _decode_in(memory, params, args)
            except Exception as exc:  # never let the trace fail a call
                before = [("?", (f"<undecodable: {exc!r}>", repr(exc)))]
            start = clock()
            try:
                result = fn(*args)
            except BaseException as exc:
                elapsed = clock() - start
                emit(name, before, _outcome(exc, answered, answer), [], elapsed)
                raise  # the very exception: the engine answers it as it would untraced
            elapsed = clock() - start
            after: list[tuple[str, Shown]] = []
            if outputs and not result:
                try:
                    after = _decode_out(memory, params, args)
                except Exception as exc:
                    after = [("?", (f"<undecodable: {exc!r}>", repr(exc)))]
            emit(name, before, ("result", result or 0), after, elapsed)
            return result

        traced.__name__ = traced.__qualname__ = name
        return traced

    def _emit(self, name: str, before: list[tuple[str, Shown]], outcome: tuple[str, Any],
              after: list[tuple[str, Shown]], elapsed_ns: int) -> None:
        if self.error is not None:
            return
        us = round(elapsed_ns / 1000, 1)
        how, value = outcome
        try:
            if self.format == "json":
                record: dict[str, Any] = {"call": name,
                                          "args": {k: v[1] for k, v in before}}
                if how == "result":
                    record["result"] = value
                elif how == "errno":
                    record["result"] = int(value)
                    record["errno"] = errno_name(value)
                else:
                    record[how] = value
                if after:
                    record["out"] = {k: v[1] for k, v in after}
                record["us"] = us
                line = json.dumps(record, ensure_ascii=False)
            else:
                if how == "result":
                    answer = str(value)
                elif how == "errno":
                    answer = errno_name(value)
                elif how == "exit":
                    answer = f"exit({value})"
                else:
                    answer = f"trap: {value}"
                shown = ", ".join(f"{k}={v[0]}" for k, v in after)
                line = (f"{name}({', '.join(f'{k}={v[0]}' for k, v in before)}) = {answer}"
                        + (f" ({shown})" if shown else "") + f" <{us}us>")
            self.stream.write(line + "\n")
            self.stream.flush()
        except Exception as exc:
            self.error = exc
            with contextlib.suppress(Exception):
                print(f"virtwasi: the trace could not be written ({exc}); tracing stopped",
                      file=sys.stderr, flush=True)

    # -- lifetime -------------------------------------------------------------------------
    def attach(self) -> None:
        """A client starts using this tracer (see :meth:`detach`)."""
        self._clients += 1

    def detach(self) -> None:
        """A client is done with this tracer: the last one closes a file opened here."""
        self._clients -= 1
        if self._clients <= 0:
            self.close()

    def close(self) -> None:
        """Close the file if this tracer opened it; a stream given is only flushed."""
        with contextlib.suppress(Exception):
            if self._owned:
                self.stream.close()
            elif not self.stream.closed:
                self.stream.flush()

    def __enter__(self) -> Tracer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


TraceTarget: TypeAlias = IO[str] | str | os.PathLike[str] | Tracer
"""What ``trace=`` takes: a text stream, a path (written afresh), or a :class:`Tracer`
(for the JSON form, or one trace shared by several clients)."""


def _outcome(exc: BaseException, answered: tuple[type[BaseException], ...],
             answer: Callable[[BaseException], int]) -> tuple[str, Any]:
    """How a call that raised ``exc`` ends, as the engine will answer it (the engine
    asks ``answer`` again itself: here it only names the errno)."""
    try:
        if isinstance(exc, ProcExit):
            return "exit", exc.code
        if isinstance(exc, answered):
            try:
                code = answer(exc)
            except BaseException as again:  # the answer itself traps (transparent.answer)
                exc = again
            else:
                return ("errno", Errno(code)) if code in _ERRNOS else ("result", code)
        return "trap", f"{type(exc).__name__}: {exc}"
    except Exception as failed:  # an exception whose message cannot even be made
        return "trap", f"{type(exc).__name__} (unprintable: {type(failed).__name__})"


_ERRNOS = frozenset(int(e) for e in Errno if e)
