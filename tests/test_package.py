"""The package root: every public name imports from ``virtwasi`` itself, lazily."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import ROOT

import virtwasi


def test_every_public_name_resolves() -> None:
    for name in virtwasi.__all__:
        assert getattr(virtwasi, name) is not None, name
    from virtwasi import Session, WasiWorld, World, run
    from virtwasi.runtime import Session as RuntimeSession
    from virtwasi.world import World as WorldWorld

    assert Session is RuntimeSession and World is WorldWorld
    assert callable(run) and WasiWorld.__module__ == "virtwasi.runtime"


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        virtwasi.nothing_of_the_kind  # noqa: B018
    except AttributeError as error:
        assert "nothing_of_the_kind" in str(error)
    else:
        raise AssertionError("no AttributeError")


def test_importing_virtwasi_loads_neither_wasmtime_nor_fsspec() -> None:
    probe = ("import sys, virtwasi; "
             "print(sorted(m for m in ('wasmtime', 'fsspec') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_a_run_over_memory_or_a_folder_never_loads_fsspec(tmp_path: Path) -> None:
    module = ROOT / "tests" / "fixtures" / "hello.wasm"
    for mount in ([], ["--dir", f"{tmp_path}::/"]):
        probe = ("import sys; from virtwasi.cli import main; "
                 f"code = main(['run', *{mount!r}, {str(module)!r}, 'x']); "
                 "print(code, 'fsspec' in sys.modules)")
        done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                              text=True, check=True)
        assert done.stdout.splitlines()[-1] == "0 False", done.stdout + done.stderr
