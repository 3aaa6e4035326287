"""The command line, run as a user runs it: a separate process."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from virtwasi.cli import main
from virtwasi.demo import runner
from virtwasi.demo.narrate import Narration


def virtwasi(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "virtwasi", *args], capture_output=True, text=True, timeout=120
    )


def test_help_explains_the_commands() -> None:
    done = virtwasi("--help")
    assert done.returncode == 0
    assert "scenario" in done.stdout and "unprivileged library instance" in done.stdout


def test_no_command_prints_help_and_fails() -> None:
    done = virtwasi()
    assert done.returncode == 2 and "usage: virtwasi" in done.stdout


def test_scenario_list_names_the_demo_with_its_summary() -> None:
    done = virtwasi("scenario", "list")
    assert done.returncode == 0
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("two-clients"))
    assert "forged handle" in line


def test_the_demo_scenario_holds_under_every_semantics() -> None:
    done = virtwasi("scenario", "run", "two-clients")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "All 6 claims held." in out
    for semantics in ("transparent", "component-model", "proposal-2021"):
        assert f"-- {semantics} " in out
    # The transparent column shows the leak; the private ones show the cleanup.
    assert "files left open after teardown | 2 " in out.replace("  ", " ")
    # Under the component model Mallory's first trap locks her out for good.
    told = " ".join(out.split())
    assert "after her first trap Mallory is locked out for good" in told
    assert "mallory | files.read(2) -> trap instance-trapped" in told


def test_run_all_runs_every_scenario() -> None:
    done = virtwasi("scenario", "run", "--all")
    assert done.returncode == 0, done.stdout + done.stderr
    listed = virtwasi("scenario", "list").stdout.strip().splitlines()
    assert f"{len(listed)} of {len(listed)} scenarios held" in done.stdout


def test_an_unknown_scenario_is_a_clear_error() -> None:
    done = virtwasi("scenario", "run", "no-such-thing")
    assert done.returncode == 2
    assert "no scenario named 'no-such-thing'" in done.stderr and "two-clients" in done.stderr
    assert done.stdout == ""


def test_a_claim_that_does_not_hold_fails_the_scenario() -> None:
    out = io.StringIO()
    say = Narration("t", out)
    say.claim("this holds", True)
    say.claim("this does not", False)
    assert say.finish() == 1
    assert "[FAILS] this does not" in out.getvalue()
    assert Narration("t", io.StringIO()).finish() == 0


def test_a_scenario_that_breaks_is_reported_and_the_others_still_run(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    found = {s.name: s for s in runner.discover()}
    broken = runner.Scenario("broken", "virtwasi.scenarios.no_such_module", Path("x.py"), "")
    monkeypatch.setattr(runner, "discover", lambda: [broken, found["two-clients"]])
    assert main(["scenario", "run", "--all"]) == 1
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    assert err.startswith("virtwasi: scenario broken broke: ModuleNotFoundError")
    assert "claims held." in out  # two-clients still ran after it
    assert out.rstrip().endswith("1 of 2 scenarios held; failed: broken")
