"""Every fixture behaves the same on wasmtime's built-in WASI and on virtwasi.

Each case runs on the reference (a temporary host folder), on virtwasi's virtual
implementation over a host folder and over the in-memory default, and on the native
implementation over a host folder; exit code, stdout, stderr and the final file tree must
all be equal.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import FIXTURES
from fixturecases import CASES, ENV

from virtwasi.compare.diff import REFERENCE, Comparison, default_runtimes, report, run_on

RUNTIMES = [name for name in default_runtimes() if name != REFERENCE]


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_same_behaviour_as_wasmtime(case: str, runtime: str, tmp_path: Path) -> None:
    module, args, prepare, stdin = CASES[case]
    comparison = Comparison(FIXTURES / module, args)
    for name in (REFERENCE, runtime):
        comparison.observations[name] = run_on(name, FIXTURES / module, args, tmp_path / name,
                                           env=ENV, stdin=stdin, prepare=prepare)
    assert comparison.same, report(comparison)
