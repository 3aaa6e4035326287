"""WASI 0.2 served by the same implementations as preview 1: :func:`wasi_host`.

A component instance's imports of WASI 0.2 are served by this Python code, which runs as
client-side code of that instance (with its :class:`~virtwasi.world.Context`), as the
preview 1 adapter runs for a core module. Filesystem calls go to the implementation (or top
layer) the instance imports as ``wasi``; the descriptors the component holds are that
implementation's handles in the component's own table. Everything else a component imports
is defined here, by the instance's context, one module per family: :mod:`.io` (streams,
pollables, errors), :mod:`.filesystem`, :mod:`.cli`, :mod:`.clocks`, :mod:`.random` and
:mod:`.sockets` (no network). Behaviour follows wasmtime's built-in WASI 0.2.
"""

from __future__ import annotations

from typing import BinaryIO

from ..component.hosting import HostInterface
from ..world import Context
from . import cli, clocks, random, sockets
from .filesystem import Filesystem
from .io import Io

__all__ = ["INTERFACES", "wasi_host"]


def wasi_host(ctx: Context, *, args: list[str], env: list[tuple[str, str]],
              stdin: BinaryIO | None, stdout: BinaryIO | None, stderr: BinaryIO | None
              ) -> dict[str, HostInterface]:
    """Every WASI 0.2 interface for the component instance of ``ctx``, by unversioned
    name (``wasi:io/streams``). ``args`` include the program's name first; ``stdin`` None
    is an empty stream, ``stdout`` or ``stderr`` None a sink."""
    io = Io(ctx)
    return {
        **io.interfaces(),
        **Filesystem(ctx, io).interfaces(),
        **cli.interfaces(ctx, io, args=args, env=env, stdin=stdin, stdout=stdout,
                         stderr=stderr),
        **clocks.interfaces(io),
        **random.interfaces(),
        **sockets.interfaces(ctx, io),
    }


INTERFACES = (
    "wasi:io/error", "wasi:io/poll", "wasi:io/streams",
    "wasi:filesystem/types", "wasi:filesystem/preopens",
    "wasi:cli/environment", "wasi:cli/exit", "wasi:cli/stdin", "wasi:cli/stdout",
    "wasi:cli/stderr", "wasi:cli/terminal-input", "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin", "wasi:cli/terminal-stdout", "wasi:cli/terminal-stderr",
    "wasi:clocks/monotonic-clock", "wasi:clocks/wall-clock",
    "wasi:random/random", "wasi:random/insecure", "wasi:random/insecure-seed",
    "wasi:sockets/network", "wasi:sockets/instance-network", "wasi:sockets/tcp",
    "wasi:sockets/tcp-create-socket", "wasi:sockets/udp", "wasi:sockets/udp-create-socket",
    "wasi:sockets/ip-name-lookup",
)
"""The interfaces :func:`wasi_host` serves, unversioned."""
