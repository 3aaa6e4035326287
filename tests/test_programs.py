"""The wasm programs the scenarios run ship beside them, as copies of the built fixtures."""

from __future__ import annotations

import re

from conftest import FIXTURES, ROOT

PROGRAMS = ROOT / "scenarios" / "programs"


def listed_in_the_makefile() -> set[str]:
    text = (FIXTURES / "Makefile").read_text()
    found = re.search(r"^PROGRAMS := (.*)$", text, re.M)
    assert found is not None
    return {f"{name}.wasm" for name in found.group(1).split()}


def test_each_program_is_byte_identical_to_its_fixture() -> None:
    shipped = {path.name for path in PROGRAMS.glob("*.wasm")}
    assert shipped == listed_in_the_makefile()
    for name in sorted(shipped):
        assert (PROGRAMS / name).read_bytes() == (FIXTURES / name).read_bytes(), (
            f"scenarios/programs/{name} differs from tests/fixtures/{name}: "
            "run make fixtures")


def test_every_program_a_scenario_names_is_shipped() -> None:
    named = set()
    for script in (ROOT / "scenarios").glob("*.py"):
        named |= set(re.findall(r'"(\w+\.wasm)"', script.read_text()))
    assert named and named <= {path.name for path in PROGRAMS.glob("*.wasm")}
