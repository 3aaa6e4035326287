"""`virtwasi graph`: the instance graph of a world file, read from the world really built,
as text for the terminal and as an SVG picture."""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import FIXTURES, ROOT

from virtwasi.cli import main
from virtwasi.worldfiles.svg import text_width

SVG = "{http://www.w3.org/2000/svg}"


def stacked_world(tmp_path: Path) -> Path:
    """Four instances in a chain over three kinds of mount."""
    (tmp_path / "data").mkdir()
    module = os.path.relpath(FIXTURES / "fstool.wasm", tmp_path)
    (tmp_path / "world.toml").write_text(f"""
semantics = "proposal-2021"

[run]
module = "{module}"
args = ["ls", "/"]

[instances.wasi]
kind = "virtual"
mounts = {{ "/" = "mem://", "/data" = "data", "/work" = {{ lower = "data" }} }}
read_only = ["/data"]

[instances.quota]
kind = "quota"
imports = {{ lower = "wasi" }}
max_bytes = 1_000_000

[instances.log]
kind = "audit"
imports = {{ lower = "quota" }}
log = "calls.jsonl"

[instances.guard]
kind = "read-only"
imports = {{ lower = "log" }}
""")
    return tmp_path / "world.toml"


def boxes(text: str) -> dict[str, list[str]]:
    """Each instance's box in the text form: its title (name · kind) to its body lines."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("╭─ "):
            current = found.setdefault(line[3:].split(" ─")[0], [])
        elif line.startswith("╰"):
            current = None
        elif current is not None:
            current.append(line.strip("│ "))
    return found


def test_the_text_shows_each_instance_its_types_links_and_mounts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    world = stacked_world(tmp_path)
    assert main(["graph", str(world)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("world world.toml (proposal-2021)")
    found = boxes(text)
    assert list(found) == ["guard · read-only", "log · audit", "quota · quota",
                           "wasi · virtual"]
    assert "defines: descriptor, directory-entry-stream" in found["wasi · virtual"]
    defined = {title: next(line for line in body if line.startswith("defines: "))
               for title, body in found.items()}
    # Every layer defines private types of its own, one for each type below it.
    assert len(set(defined.values())) == 4
    assert all(line.count(",") == 1 for line in defined.values())
    assert defined["guard · read-only"].startswith("defines: ro-")
    assert "max_bytes = 1000000" in found["quota · quota"]
    assert 'log = "calls.jsonl"' in found["log · audit"]
    for link in ("imports wasi_snapshot_preview1 = guard", "imports lower = log",
                 "imports lower = quota", "imports lower = wasi"):
        assert f"│ {link}" in text
    assert "┃ fstool.wasm" in text and "┃ args: ls /" in text
    mounts = [re.split(r"\s{2,}", line.strip()[4:]) for line in text.splitlines()
              if line.lstrip().startswith(("├──", "└──"))]
    assert mounts == [["/", "mem://", "(memory)"],
                      ["/data", "data", "(host folder, read-only)"],
                      ["/work", "data under mem://", "(overlay: memory over host folder)"]]
    assert not (tmp_path / "calls.jsonl").exists()  # drawing runs nothing, logs nothing


def test_the_native_implementation_is_drawn_as_the_hosts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "world.toml").write_text(
        '[instances.host]\nkind = "native"\nmounts = { "/" = "." }\n')
    assert main(["graph", str(tmp_path / "world.toml")]) == 0
    text = capsys.readouterr().out
    # An instance like the virtual one: its types are its own, its privilege the host's.
    assert "defines: descriptor, directory-entry-stream" in boxes(text)["host · native"]
    assert "module" not in text  # no [run] module: nothing above the instances


def svg_of(world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> ET.Element:
    out = tmp_path / "world.svg"
    assert main(["graph", str(world), "--svg", str(out)]) == 0
    assert capsys.readouterr().out.endswith(f"wrote {out}\n")
    return ET.parse(out).getroot()


def test_the_svg_shows_the_same_graph(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    root = svg_of(stacked_world(tmp_path), tmp_path, capsys)
    texts = [t.text or "" for t in root.iter(f"{SVG}text")]
    for expected in ("fstool.wasm", "args: ls /", "guard", "read-only", "log", "audit",
                     "quota", "wasi", "virtual", "descriptor", "directory-entry-stream",
                     "wasi_snapshot_preview1", "max_bytes = 1000000", "/data", "data",
                     "/work", "data under mem://", "overlay: memory over host folder"):
        assert expected in texts, expected
    assert texts.count("lower") == 3  # one label for each layer's import
    assert sum(t.startswith("ro-") for t in texts) == 2
    assert len(list(root.iter(f"{SVG}line"))) == 4  # the module's import and three lowers


def test_no_text_overflows_the_box_it_sits_in(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    root = svg_of(stacked_world(tmp_path), tmp_path, capsys)
    rects = [tuple(float(r.get(k, 0)) for k in ("x", "y", "width", "height"))
             for r in root.iter(f"{SVG}rect") if r.get("x") is not None]
    width = float(root.get("width", 0))
    checked = 0
    for t in root.iter(f"{SVG}text"):
        x, y, size = float(t.get("x", 0)), float(t.get("y", 0)), float(t.get("font-size", 0))
        w = text_width(t.text or "", size, mono="Mono" in t.get("font-family", ""),
                       bold=t.get("font-weight") == "bold")
        left = x - (w / 2 if t.get("text-anchor") == "middle" else 0)
        assert 0 <= left <= width - w, t.text
        around = [r for r in rects if r[0] <= x <= r[0] + r[2] and r[1] <= y <= r[1] + r[3]]
        if around:
            inner = min(around, key=lambda r: r[2] * r[3])
            assert inner[0] <= left and left + w <= inner[0] + inner[2], t.text
            checked += 1
    assert checked > 20


def test_the_example_world_is_drawn(capsys: pytest.CaptureFixture[str]) -> None:
    here = os.getcwd()
    try:
        os.chdir(ROOT)
        assert main(["graph", "examples/readonly.toml"]) == 0
    finally:
        os.chdir(here)
    assert "╭─ guard · read-only" in capsys.readouterr().out


def test_a_bad_world_file_is_one_line_and_draws_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "world.toml").write_text('[instances.wasi]\nkind = "virtual"\nmounts = 3\n')
    out = tmp_path / "world.svg"
    assert main(["graph", str(tmp_path / "world.toml"), "--svg", str(out)]) == 2
    done = capsys.readouterr()
    assert done.out == "" and not out.exists()
    assert done.err == (f"virtwasi: {tmp_path / 'world.toml'}: [instances.wasi] mounts: "
                        "expected a table of GUEST = URL, got 3\n")
