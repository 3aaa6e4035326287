"""virtwasi's native WASI implementation over the host folder: host fds, no world between.

The implementation is the host's own (:class:`virtwasi.native.NativeWasi`); when the run
ends, its teardown hook closes every host fd the guest left open.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from virtwasi.outcome import RunResult
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
