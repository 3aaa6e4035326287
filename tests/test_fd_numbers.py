"""New descriptors get the numbers wasmtime gives them: the highest free number first.

yosys's abc pass moves stdout away with fd_renumber and cannot move it back; the files it
opens next must not take the old stdout number, or the rest of its log lands in them. The
module opens four files, frees three out of order, opens two, moves stdout away, opens two
more, and prints every errno and descriptor number it got, then what each file holds.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import wasmtime
from conftest import load_adapter

from virtwasi.storage.hostdir import HostDirStorage
from virtwasi.storage.tree import snapshot

RIGHTS = 0x1FFFFFFF
WAT = f"""
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_renumber" (func $renumber (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "abcdefgh")
  (global $out (mut i32) (i32.const 1000))
  (func $note (param i32)
    (i32.store8 (global.get $out) (i32.add (i32.const 65) (local.get 0)))
    (global.set $out (i32.add (global.get $out) (i32.const 1))))
  (func $open (param $name i32) (result i32)
    (call $note (call $path_open (i32.const 3) (i32.const 0) (local.get $name) (i32.const 1)
      (i32.const 1) (i64.const {RIGHTS}) (i64.const {RIGHTS}) (i32.const 0) (i32.const 200)))
    (call $note (i32.load (i32.const 200)))
    (i32.load (i32.const 200)))
  (func $put (param $fd i32) (param $what i32)
    (i32.store (i32.const 300) (local.get $what))
    (i32.store (i32.const 304) (i32.const 1))
    (call $note (call $write (local.get $fd) (i32.const 300) (i32.const 1) (i32.const 308))))
  (func (export "_start") (local $g i32) (local $h i32)
    (drop (call $open (i32.const 100)))
    (drop (call $open (i32.const 101)))
    (drop (call $open (i32.const 102)))
    (drop (call $open (i32.const 103)))
    (call $note (call $close (i32.const 5)))
    (call $note (call $close (i32.const 7)))
    (call $note (call $close (i32.const 6)))
    (drop (call $open (i32.const 104)))
    (drop (call $open (i32.const 105)))
    (call $note (call $renumber (i32.const 1) (i32.const 4)))
    (call $note (call $renumber (i32.const 7) (i32.const 1)))
    (local.set $g (call $open (i32.const 106)))
    (local.set $h (call $open (i32.const 107)))
    (call $put (i32.const 1) (i32.const 101))
    (call $put (local.get $g) (i32.const 102))
    (call $put (local.get $h) (i32.const 103))
    (call $put (i32.const 4) (i32.const 104))
    (i32.store (i32.const 300) (i32.const 1000))
    (i32.store (i32.const 304) (i32.sub (global.get $out) (i32.const 1000)))
    (drop (call $write (i32.const 2) (i32.const 300) (i32.const 1) (i32.const 308)))))
"""


@pytest.mark.parametrize("runtime", ["virtual-host", "virtual-memory"])
def test_fd_numbers_as_wasmtime(runtime: str, tmp_path: Path) -> None:
    module = tmp_path / "fdnumbers.wasm"
    module.write_bytes(bytes(wasmtime.wat2wasm(WAT)))
    virtual = load_adapter("virtwasi_virtual")
    outcomes = []
    for name, runner in [("reference", load_adapter("wasmtime_wasi").run),
                         (runtime, virtual.run if runtime == "virtual-host"
                          else virtual.run_in_memory)]:
        root = tmp_path / name
        root.mkdir()
        result = runner(module, [], root)
        with HostDirStorage(root) as storage:
            outcomes.append((result, snapshot(storage)))
    assert outcomes[1] == outcomes[0]
    # Pinned as well: wasmtime's numbering, so that a change on its side is noticed.
    result, tree = outcomes[0]
    assert result.stderr == b"AEAFAGAHAAAAHAGAIAFABAAAA"
    assert result.stdout == b"e" and tree["g"] == ("regular", b"c")
    assert tree["h"] == ("regular", b"bd")  # fd 1 was free: the last file opened took it
