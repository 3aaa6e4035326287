"""The wasm programs the scenarios run ship beside them, as copies of the built fixtures."""

from __future__ import annotations

import re
from pathlib import Path

from componentkit import wasm_tools
from conftest import FIXTURES, ROOT

PROGRAMS = ROOT / "scenarios" / "programs"


def listed_in_the_makefile(variable: str = "PROGRAMS") -> set[str]:
    text = (FIXTURES / "Makefile").read_text()
    found = re.search(rf"^{variable} := (.*)$", text, re.M)
    assert found is not None
    return {name for name in found.group(1).split()}


def test_each_program_is_byte_identical_to_its_fixture() -> None:
    shipped = {path.name for path in PROGRAMS.glob("*.wasm")}
    programs = {f"{name}.wasm" for name in listed_in_the_makefile()}
    components = {f"{name}.component.wasm" for name in listed_in_the_makefile("COMPONENTS")}
    assert shipped == programs | components
    for name in sorted(programs):
        assert (PROGRAMS / name).read_bytes() == (FIXTURES / name).read_bytes(), (
            f"scenarios/programs/{name} differs from tests/fixtures/{name}: "
            "run make fixtures")


def test_each_shipped_component_is_its_wat_and_wit_built_again(tmp_path: Path) -> None:
    for name in sorted(listed_in_the_makefile("COMPONENTS")):
        core, embedded = tmp_path / f"{name}.core.wasm", tmp_path / f"{name}.embed.wasm"
        built = tmp_path / f"{name}.component.wasm"
        wasm_tools("parse", FIXTURES / "components" / f"{name}.wat", "-o", core)
        wasm_tools("component", "embed", FIXTURES / "components" / f"{name}.wit", core,
                   "-o", embedded)
        wasm_tools("component", "new", embedded, "-o", built)
        assert (PROGRAMS / built.name).read_bytes() == built.read_bytes(), (
            f"scenarios/programs/{built.name} is not built from its sources: run make "
            "fixtures")


def test_every_program_a_scenario_names_is_shipped() -> None:
    named = set()
    for script in (ROOT / "scenarios").glob("*.py"):
        named |= set(re.findall(r'"(\w+(?:\.component)?\.wasm)"', script.read_text()))
    assert named and named <= {path.name for path in PROGRAMS.glob("*.wasm")}
