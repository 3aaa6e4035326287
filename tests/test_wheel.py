"""The wheel built from this checkout installs and runs outside it.

It is built, installed into a fresh virtual environment (with the loopback and dask extras,
from the package index through pip's cache), and run from a folder outside the checkout with no
PYTHONPATH: every scenario, the wasm programs they run and the adapters must all have
travelled inside it, as ``virtwasi.scenarios`` and ``virtwasi.adapters``; then the README's
examples run from what ``virtwasi examples`` copies out.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT
from test_readme import EXPECTED

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
    # With the loopback extra, so that the scenario over S3 has its local server, then the
    # dask extra, for the README's batch on a Dask cluster: in a second install, which
    # resolves only what it adds (both in one can backtrack for minutes).
    for extra in ("loopback", "dask"):
        call(sys.executable, "-m", "pip", "--python", python, "install", "--quiet",
             f"{wheel}[{extra}]", cwd=tmp_path, timeout=600)

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    listing = call(venv / "bin" / "virtwasi", "scenario", "list", cwd=elsewhere, env=env)
    assert "two-clients" in listing and "forging" in listing
    out = call(venv / "bin" / "virtwasi", "scenario", "run", "--all", cwd=elsewhere, env=env,
               timeout=600)
    count = len(listing.strip().splitlines())
    assert out.rstrip().endswith(f"{count} of {count} scenarios held")
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
    readme_examples(venv, elsewhere / "ex", env)
    where = call(python, "-c", "from virtwasi import run, Session, WasiWorld, World\n"
                 "import virtwasi.adapters.wasmtime_wasi, virtwasi.scenarios.forging as f\n"
                 "print(f.__file__)", cwd=elsewhere, env=env)
    site = Path(where.strip()).resolve().parents[2]
    assert site.name == "site-packages" and venv.resolve() in site.parents
    # the two folders travel inside virtwasi, never as top-level packages of their own
    assert not (site / "adapters").exists() and not (site / "scenarios").exists()


def readme_examples(venv: Path, examples: Path, env: dict[str, str]) -> None:
    """What the README runs, from the examples a pip install copies out: its Python blocks
    print what it says, and its shell lines that need no server or file of the reader's
    own exit 0."""
    python, virtwasi = venv / "bin" / "python", venv / "bin" / "virtwasi"
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    for block, expected in zip(blocks, EXPECTED, strict=True):
        assert call(python, "-c", block, cwd=examples, env=env).splitlines() == expected
    call(python, "-c", "import zipfile; zipfile.ZipFile('site.zip', 'w')"
         ".writestr('docs/a.txt', 'hi\\n')", cwd=examples, env=env)
    fstool = "scenarios/programs/fstool.wasm"
    moved = call(virtwasi, "run", "--mount", "/site=zip::file://site.zip", "--overlay", "/site",
                 fstool, "append", "/site/docs/a.txt", "and a change", "mv", "/site/docs",
                 "/site/moved", "ls", "/site", "cat", "/site/moved/a.txt", cwd=examples,
                 env=env)
    assert "hi\nand a change" in moved
    (examples / "changes").mkdir()
    call(virtwasi, "run", "--mount", "/site=zip::file://site.zip", "--overlay",
         "/site=changes", fstool, "put", "/site/docs/b.txt", "new", cwd=examples, env=env)
    assert (examples / "changes" / "docs" / "b.txt").read_text() == "new"
    done = subprocess.run([virtwasi, "run", "--world", "examples/readonly.toml"], cwd=examples,
                          env=env, capture_output=True, text=True, timeout=120)
    assert "Read-only file system" in done.stdout, done.stdout + done.stderr
    listed = subprocess.run([virtwasi, "run", "--world", "examples/readonly.toml", "--", "ls",
                             "/data"], cwd=examples, env=env, capture_output=True, text=True,
                            timeout=120)
    assert listed.stdout.splitlines()[-1] == "ls /data: notes.txt"  # after the file's own
    call(virtwasi, "graph", "examples/quota.toml", "--svg", "quota.svg", cwd=examples, env=env)
    assert "<svg " in (examples / "quota.svg").read_text()
    call(virtwasi, "map", "--input", "examples/batch", "--output", "/out.txt=upcased/{stem}.txt",
         "--results", "results.jsonl", "scenarios/programs/upcase.wasm", "/in/{name}",
         "/out.txt", cwd=examples, env=env)
    assert (examples / "upcased" / "a.txt").read_text() == "FIRST INPUT\n"
    assert len((examples / "results.jsonl").read_text().splitlines()) == 3
