"""An audit log of every call that crosses it, written as an unprivileged layer.

Stacked like any layer (see :mod:`.wrapping`; its types are ``audit-descriptor`` and
``audit-directory-entry-stream``), it passes every call through unchanged and writes one
JSON line for each:

    {"call": "write", "args": [5, {"bytes": 16}, 0], "result": 16, "us": 3.2}
    {"call": "open_at", "args": [3, 0, "a.txt", 0, 1], "errno": "ENOENT", "us": 9.1}

``call`` is the function's name in the interface; ``args`` its arguments, with each handle
given as the number of the lower handle it wraps (stable from the ``open_at`` that returned
it to its end), paths as strings and buffers as their length only; then ``result`` (a stat
as its kind, size, inode and link count; a directory entry as its name), or ``errno`` (the
POSIX name of the answer) or ``trap`` (the reason); ``us`` is the time the layers and
implementation below took, in microseconds. A handle that ends (closed by its holder, or
left open by a client torn down) is a line of its own: ``{"drop": "descriptor",
"handle": 5}``.

The sink is a local path or ``file://`` URL, appended to line by line, each line flushed as
it is written, so a crash loses nothing already logged; or any other fsspec URL
(``memory://``, ``s3://``...): object stores cannot append, so there the lines are kept and
the whole log is written when the layer is torn down (``WasiWorld.close``), after whatever the
object already held. A world never closed writes nothing there. A bucket that does not
exist is refused before anything runs; a write that fails at the end is an
:class:`AuditLogError` from the world's close.
"""

from __future__ import annotations

import enum
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from ..filesystem.errors import code_of
from ..filesystem.interface import Category, DirectoryEntry, Function
from ..storage.base import Stat
from ..world import Context, Definition, Func, ResourceType, Trap
from .wrapping import Wrapped, Wrapping

_encode = json.JSONEncoder(separators=(",", ":")).encode
_PLAIN = frozenset({int, str, bool, float, type(None)})  # logged as they are


class AuditLogError(OSError):
    """The log could not be written at the end of the run (raised by the world's close)."""


class _Log(Protocol):
    def write(self, line: str) -> None: ...

    def close(self) -> None: ...


class _AppendedLog:
    """A local file, appended to one line at a time: each line is one write of its own,
    handed to the OS at once, with no buffer in this process for a crash to lose."""

    def __init__(self, path: Path) -> None:
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, line: str) -> None:
        if self._fd is not None:  # ends dropped while the layer itself is torn down
            os.write(self._fd, (line + "\n").encode())

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class _BufferedLog:
    """A store that cannot append: the lines, written after its old content at close."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._lines: list[str] | None = []

    def write(self, line: str) -> None:
        if self._lines is not None:
            self._lines.append(line)

    def close(self) -> None:
        if self._lines is None:
            return
        import fsspec.core  # only a remote log needs fsspec

        lines, self._lines = self._lines, None
        try:
            fs, path = fsspec.core.url_to_fs(self._url)
            old = fs.cat_file(path) if fs.exists(path) else b""
            fs.pipe_file(path, old + "".join(line + "\n" for line in lines).encode())
        except Exception as exc:  # the store's own errors: network, permissions, a bucket gone
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise AuditLogError(f"audit log {self._url!r} was not written "
                                f"({len(lines)} lines lost): {reason}") from exc


def audit_layer(sink: str | os.PathLike[str]) -> Definition:
    """The definition of an audit layer logging to ``sink`` (a local path, or any fsspec
    URL); instantiate it with the interface as ``lower``. A sink that cannot be written to
    is a ``ValueError`` here, before anything runs."""
    open_log = _sink(sink)

    def definition(ctx: Context) -> dict[str, Func | ResourceType]:
        log = open_log()
        # The log is a resource of a child instance, torn down with the layer (or with the
        # world), whose destructor closes it. Not one of the layer's own handles: under
        # transparent semantics the layer's table is every client's fd namespace.
        ctx.instantiate("audit-log", _keeper(log))
        return _Auditor(ctx, log).exports()

    return definition


def _keeper(log: _Log) -> Definition:
    def keeper(ctx: Context) -> dict[str, Func | ResourceType]:
        log_type = ctx.resource_type("audit-log", destructor=lambda _: log.close())
        ctx.resource_new(log_type, log)
        return {}

    return keeper


class _Auditor:
    """One audit layer instance: every function logged, every handle's end too."""

    def __init__(self, ctx: Context, log: _Log) -> None:
        self.log = log
        self.layer = Wrapping(ctx, "audit", before_release=self._released)

    def exports(self) -> dict[str, Func | ResourceType]:
        layer = self.layer
        return layer.exports({}, dict.fromkeys(
            Category, lambda function: self._audited(function, layer.forward(function))))

    def _released(self, rep: Wrapped, name: str) -> None:
        self.log.write(_encode({"drop": name, "handle": rep.lower}))

    def _audited(self, function: Function, inner: Callable[..., Any]) -> Callable[..., Any]:
        """``inner`` (what the layer does for ``function``) with a log line for each call."""
        name = function.name
        handles = dict(self.layer.handle_slots(function))
        wrap_as = self.layer.result_type(function)
        lower_of, write, clock = self.layer.lower_of, self.log.write, time.perf_counter_ns
        more = len(function.results) > 1  # open_at: the handle, then its type and flags

        def handle_number(h: Any, rtype: ResourceType) -> Any:
            try:
                return lower_of(h, rtype)
            except Trap:  # closed or forged: the call itself will trap, and say so
                return None

        def logged(*args: Any) -> Any:
            record: dict[str, Any] = {"call": name, "args": [
                handle_number(a, handles[i]) if i in handles
                else a if type(a) in _PLAIN else _shown(a)
                for i, a in enumerate(args)]}
            start = clock()
            try:
                result = inner(*args)
            except Trap as trap:
                record["trap"] = trap.reason.value
                raise
            except Exception as exc:  # what the adapter will answer the guest
                record["errno"] = code_of(exc).value
                raise
            else:
                if wrap_as is None:
                    record["result"] = result if type(result) in _PLAIN else _shown(result)
                elif more:
                    record["result"] = [lower_of(result[0], wrap_as), *map(_shown, result[1:])]
                else:
                    record["result"] = lower_of(result, wrap_as)
                return result
            finally:
                record["us"] = round((clock() - start) / 1000, 1)
                write(_encode(record))

        return logged


def _sink(sink: str | os.PathLike[str]) -> Callable[[], _Log]:
    """How to open ``sink``, checked now: a clear error before any world is built."""
    text = os.fspath(sink)
    if "://" not in text or text.startswith("file://"):
        path = Path(text.removeprefix("file://"))
        if path.is_dir():
            raise ValueError(f"audit log {text!r} is a folder, not a file")
        if not path.parent.is_dir():
            raise ValueError(f"audit log {text!r}: no folder {str(path.parent)!r} to write it in")
        return lambda: _AppendedLog(path)
    import fsspec.core

    try:
        fs, path = fsspec.core.url_to_fs(text)
    except (ValueError, ImportError) as exc:
        raise ValueError(f"audit log {text!r}: {exc}") from None
    _check_bucket(fs, path, text)
    return lambda: _BufferedLog(text)


def _check_bucket(fs: Any, path: str, text: str) -> None:
    """In an object store (paths start with a bucket: no root marker), the bucket must
    exist: one request now rather than a log lost at the end of the run. Folders below it
    need not, as stores have none."""
    bucket, _, rest = path.strip("/").partition("/")
    if fs.root_marker or not bucket or not rest:
        return
    try:
        found = fs.exists(bucket)
    except Exception as exc:  # credentials, network: the final write would fail alike
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"audit log {text!r}: cannot reach it: {reason}") from None
    if not found:
        raise ValueError(f"audit log {text!r}: no bucket {bucket!r} to write it in")


def _shown(value: Any) -> Any:
    """``value`` as JSON can hold it: bytes as their length, never their contents."""
    if type(value) is tuple:  # fdstat's four numbers
        return [v if type(v) in _PLAIN else _shown(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, enum.Enum):  # a descriptor type
        return value.value
    if isinstance(value, bytes | bytearray | memoryview):
        return {"bytes": value.nbytes if isinstance(value, memoryview) else len(value)}
    if isinstance(value, Stat):
        return {"kind": value.kind.value, "size": value.size, "ino": value.ino,
                "nlink": value.nlink}
    if isinstance(value, DirectoryEntry):
        return {"name": value.name, "kind": value.kind.value}
    if isinstance(value, list):
        return {"entries": len(value)}
    if isinstance(value, tuple):
        return [_shown(v) for v in value]
    return repr(value)
