"""The README's Python examples run as written, as a script would run them, and print what
the README says."""

from __future__ import annotations

import contextlib
import io
import re

from conftest import ROOT

EXPECTED = [
    ["0 b'hello, Ada\\n'"],
    ["60"],
    ["HELLO, WASM", "one two"],
    ["2 b'kept open'"],
    ["3 of 3 ok", "SECOND INPUT"],
    ["3 of 3 ok", "THIRD INPUT"],
    ["closed /notes", "TrapReason.INSTANCE_DESTROYED"],
]


def test_the_readme_examples_run_and_print_what_they_say() -> None:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) == len(EXPECTED)
    for block, expected in zip(blocks, EXPECTED, strict=True):
        out = io.StringIO()
        with contextlib.chdir(ROOT), contextlib.redirect_stdout(out):
            exec(compile(block, "README.md", "exec"), {"__name__": "__main__"})
        assert out.getvalue().splitlines() == expected


def test_the_readme_quick_start_has_exactly_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    quick = text.split("## Quick start", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in quick.strip().splitlines()]
    assert commands == ["make demo", "make test"]
