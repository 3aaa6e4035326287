"""virtwasi's native WASI implementation over the host folder: host fds.

The implementation is the host-privileged instance of :mod:`virtwasi.native`, behind the
same preview 1 adapter as the virtual one; when the run ends, teardown drops every
descriptor the guest left open and the implementation's destructor closes its host fd.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from virtwasi.compare.result import RunResult
from virtwasi.runtime import ImportFunc
from virtwasi.runtime import run as run_module


def run(
    module: Path,
    argv: Sequence[str],
    root: Path,
    *,
    env: Mapping[str, str] | None = None,
    stdin: bytes = b"",
    imports: Mapping[str, Mapping[str, ImportFunc]] | None = None,
) -> RunResult:
    return run_module(module, argv, mounts={"/": root}, impl="native", env=env, stdin=stdin,
                      imports=imports)
