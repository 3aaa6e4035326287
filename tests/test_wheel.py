"""The wheel built from this checkout installs and runs outside it.

It is built, installed into a fresh virtual environment (wasmtime and fsspec from the
package index, through pip's cache), and run from a folder outside the checkout with no
PYTHONPATH: the scenarios, the wasm programs they run and the adapters must all have
travelled inside it, as ``virtwasi.scenarios`` and ``virtwasi.adapters``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

pytestmark = pytest.mark.wheel


def call(*argv: str | Path, cwd: Path, env: dict[str, str] | None = None,
         timeout: float = 120) -> str:
    done = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, (
        f"{' '.join(map(str, argv))} exited {done.returncode}\n"
        f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def test_the_wheel_installs_and_runs_the_scenarios_outside_the_checkout(
        tmp_path: Path) -> None:
    wheels, venv, elsewhere = tmp_path / "wheels", tmp_path / "venv", tmp_path / "elsewhere"
    elsewhere.mkdir()
    call(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", wheels, ROOT,
         cwd=tmp_path)
    (wheel,) = wheels.glob("virtwasi-*.whl")
    call(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    call(sys.executable, "-m", "pip", "--python", python, "install", "--quiet", wheel,
         cwd=tmp_path, timeout=300)

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    listing = call(venv / "bin" / "virtwasi", "scenario", "list", cwd=elsewhere, env=env)
    assert "two-clients" in listing and "forging" in listing
    for name in ("two-clients", "forging"):
        out = call(venv / "bin" / "virtwasi", "scenario", "run", name, cwd=elsewhere, env=env)
        assert "claims held" in out
    # The examples the README runs: copied out of the installed package, then run from
    # another folder by their paths.
    copied = call(venv / "bin" / "virtwasi", "examples", elsewhere / "ex", cwd=elsewhere,
                  env=env)
    assert "examples/readonly.toml" in copied and "scenarios/programs/hello.wasm" in copied
    other = tmp_path / "other"
    other.mkdir()
    hello = call(venv / "bin" / "virtwasi", "run",
                 elsewhere / "ex" / "scenarios" / "programs" / "hello.wasm", "Ada",
                 cwd=other, env=env)
    assert hello == "hello, Ada\n"
    drawn = call(venv / "bin" / "virtwasi", "graph", elsewhere / "ex" / "examples" / "quota.toml",
                 cwd=other, env=env)
    assert "quota" in drawn
    where = call(python, "-c", "from virtwasi import run, Session, WasiWorld, World\n"
                 "import virtwasi.adapters.wasmtime_wasi, virtwasi.scenarios.forging as f\n"
                 "print(f.__file__)", cwd=elsewhere, env=env)
    site = Path(where.strip()).resolve().parents[2]
    assert site.name == "site-packages" and venv.resolve() in site.parents
    # the two folders travel inside virtwasi, never as top-level packages of their own
    assert not (site / "adapters").exists() and not (site / "scenarios").exists()
