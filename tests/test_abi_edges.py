"""Wild pointers, lengths and values: the same answer as wasmtime, and never a host error.

Each case is a tiny module that calls one import with raw arguments and exits with the
errno it got back; a trap (wasmtime traps on misaligned pointers and on values outside an
enum or flags type) exits 134. The exit code must match wasmtime's for every case.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import wasmtime
from conftest import load_adapter

from virtwasi.wasi.abi import IMPORTS

# Memory layout of every probe: "f" at 1024, an invalid UTF-8 byte at 1100, a valid iovec
# at 2048 (4 bytes at 4096), an iovec running out of memory at 2056.
DATA = r"""
  (data (i32.const 1024) "f")
  (data (i32.const 1100) "\ff")
  (data (i32.const 2048) "\00\10\00\00\04\00\00\00")
  (data (i32.const 2056) "\fa\ff\00\00\64\00\00\00")
"""
ALL = 0x3FFFFFFF
CASES: dict[str, tuple[str, tuple[int, ...]]] = {
    "fdstat ok": ("fd_fdstat_get", (1, 3000)),
    "fdstat misaligned": ("fd_fdstat_get", (1, 3001)),
    "fdstat out of bounds": ("fd_fdstat_get", (1, 65528)),
    "fdstat far out": ("fd_fdstat_get", (1, 0xFFFFFFF8)),
    "fdstat bad fd": ("fd_fdstat_get", (77, 3000)),
    "args sizes out of bounds": ("args_sizes_get", (65536, 3000)),
    "write ok": ("fd_write", (1, 2048, 1, 3000)),
    "write huge iovec count": ("fd_write", (1, 2048, 0xFFFFFFFF, 3000)),
    "write iovec past the end": ("fd_write", (1, 2056, 1, 3000)),
    "write misaligned iovecs": ("fd_write", (1, 2050, 1, 3000)),
    "write bad fd": ("fd_write", (9, 2048, 1, 3000)),
    "read from stdout": ("fd_read", (1, 2048, 1, 3000)),
    "open path out of bounds": ("path_open", (3, 0, 65530, 100, 1, ALL, ALL, 0, 3000)),
    "open path not utf-8": ("path_open", (3, 0, 1100, 1, 1, ALL, ALL, 0, 3000)),
    "open unknown oflags": ("path_open", (3, 0, 1024, 1, 0x100, ALL, ALL, 0, 3000)),
    "open unknown rights": ("path_open", (3, 0, 1024, 1, 1, 1 << 40, ALL, 0, 3000)),
    "open unknown lookupflags": ("path_open", (3, 4, 1024, 1, 1, ALL, ALL, 0, 3000)),
    "open fd out misaligned": ("path_open", (3, 0, 1024, 1, 1, ALL, ALL, 0, 3001)),
    "clock bad id": ("clock_time_get", (99, 0, 3000)),
    "clock misaligned": ("clock_time_get", (1, 0, 3004)),
    "seek bad whence": ("fd_seek", (3, 0, 9, 3000)),
    "advise bad advice": ("fd_advise", (3, 0, 0, 9)),
    "random out of bounds": ("random_get", (65000, 10000)),
    # Checked before any byte is made: a huge length traps at once, as in wasmtime.
    "random huge length": ("random_get", (4096, 0xFFFFFFF0)),
    "random nothing far out": ("random_get", (0xFFFFFFF8, 0)),  # an empty buffer is fine
    "stat path empty far out": ("path_filestat_get", (3, 0, 0xFFFFFFF0, 0, 3000)),
    "stat unknown lookupflags": ("path_filestat_get", (3, 2, 1024, 1, 3000)),
    "poll nothing": ("poll_oneoff", (4096, 8192, 0, 3000)),
    "prestat name too long buffer past end": ("fd_prestat_dir_name", (3, 65535, 100)),
    "readdir on a file fd": ("fd_readdir", (1, 4096, 128, 0, 3000)),
    # wasi-libc has no __wasi_proc_raise: the C fixtures cannot reach it.
    "raise SIGTERM": ("proc_raise", (15,)),
    "raise signal 0": ("proc_raise", (0,)),
    "raise an unknown signal": ("proc_raise", (99,)),
    "set times unknown fstflags": ("fd_filestat_set_times", (3, 0, 0, 0x10)),
    "path set times unknown fstflags": ("path_filestat_set_times", (3, 0, 1024, 1, 0, 0, 0x10)),
    "path set times unknown lookupflags": ("path_filestat_set_times", (3, 2, 1024, 1, 0, 0, 0)),
    "set flags unknown bits": ("fd_fdstat_set_flags", (3, 0x20)),
    "set rights unknown bits": ("fd_fdstat_set_rights", (3, 1 << 40, 0)),
    "sock_recv unknown riflags": ("sock_recv", (0, 2048, 1, 4, 3000, 3004)),
    "sock_send on stdout": ("sock_send", (1, 2048, 1, 0, 3000)),
    "sock_shutdown unknown sdflags": ("sock_shutdown", (1, 4)),
    "sock_accept unknown fdflags": ("sock_accept", (1, 0x20, 3000)),
}


def probe(name: str, args: tuple[int, ...]) -> bytes:
    kinds = IMPORTS[name]
    params = " ".join("i64" if k in ("u64", "i64") else "i32" for k in kinds)
    consts = " ".join(
        f"({'i64' if k in ('u64', 'i64') else 'i32'}.const {a})"
        for k, a in zip(kinds, args, strict=True)
    )
    return bytes(wasmtime.wat2wasm(f"""
(module
  (import "wasi_snapshot_preview1" "{name}" (func $f (param {params}) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  {DATA}
  (func (export "_start") (call $exit (call $f {consts}))))
"""))


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_answer_as_wasmtime(case: str, tmp_path: Path) -> None:
    name, args = CASES[case]
    module = tmp_path / "probe.wasm"
    module.write_bytes(probe(name, args))
    (tmp_path / "ref").mkdir()
    (tmp_path / "ours").mkdir()
    expected = load_adapter("wasmtime_wasi").run(module, [], tmp_path / "ref")
    got = load_adapter("virtwasi_virtual").run(module, [], tmp_path / "ours")
    assert got.exit_code == expected.exit_code, (got, expected)
    assert b"Traceback" not in got.stderr
