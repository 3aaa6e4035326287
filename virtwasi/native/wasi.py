"""The native WASI preview 1 implementation: host-privileged, over host folders.

It is written as a runtime writes its WASI: it opens the host folders it serves, resolves
every guest path one component at a time from a directory fd with no-follow semantics, keeps
the client's fd table of real host file descriptors, and closes them at teardown through
:meth:`~NativeWasi.close_all`. It exists to be run beside the virtual implementation, with
the same guest-visible behaviour as wasmtime's built-in WASI.
"""

from __future__ import annotations

from .fdops import FdImports
from .pathops import PathImports


class NativeWasi(FdImports, PathImports):
    """Every preview 1 import for one client, over host folders.

    ``NativeWasi(mounts, args, env, stdin, stdout, stderr)``: ``mounts`` maps guest paths
    to host folders, preopened from fd 3 in order. :meth:`functions` gives one callable per
    import (integers in, results written to guest memory, :class:`WasiError` for an errno,
    :class:`ProcExit` for an exit); attach ``memory`` (a :class:`GuestMemory`) once the
    module is instantiated; call :meth:`close_all` when the client is done.
    """
