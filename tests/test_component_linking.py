"""Components linked and run by virtwasi: typed calls, host imports, resources and their rules.

The components are hand-written WAT (``tests/fixtures/components``), parsed with wasm-tools:

- ``things.wat`` defines a resource type ``thing`` whose destructor (reached through a table
  that a later core instance fills, as wit-component's shims do) adds each dropped
  representation to a counter; it exports arithmetic, a string function using ``realloc``,
  and functions that make, read, drop and forge handles.
- ``greeter.wat`` imports ``my:pkg/host@1.0.0`` with ``greet(name: string) -> string`` and
  exports ``hello``, which calls it: a string lowered into the component's memory by its
  ``realloc``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from componentkit import parse_wat

from virtwasi.runtime import ComponentSession, GuestTrap, Session, WasiWorld
from virtwasi.world import LinkError

FIXTURES = Path(__file__).parent / "fixtures" / "components"


@pytest.fixture(scope="module")
def things(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("components") / "things.wasm"
    out.write_bytes(parse_wat((FIXTURES / "things.wat").read_text()))
    return out


@pytest.fixture(scope="module")
def greeter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("components") / "greeter.wasm"
    out.write_bytes(parse_wat((FIXTURES / "greeter.wat").read_text()))
    return out


def test_a_session_over_a_component_calls_its_exports_with_python_values(things: Path
                                                                           ) -> None:
    with Session(things) as session:
        assert isinstance(session, ComponentSession)
        assert session.call("add", 2, -5) == -3
        assert session.call("shout", "héllo wörld") == "HéLLO WöRLD"
        with pytest.raises(ValueError, match="exports no function named 'nope'"):
            session.call("nope")
        with pytest.raises(TypeError, match="takes 2 arguments"):
            session.call("add", 1)


def test_resources_the_component_defines_are_made_read_and_destroyed_in_its_own_table(
        things: Path) -> None:
    with Session(things) as session:
        assert session.call("make", 7) == 7  # new, rep, drop: the destructor ran
        assert session.call("make", 5) == 5
        assert session.call("dropped") == 12
        index = session.call("keep", 9)
        (held,) = session.instance.holdings()
        assert (held.index, held.type_name, held.definer_name) == (index, "thing", "things.wasm")
        assert session.call("dropped") == 12  # kept: not destroyed


def test_a_forged_or_dropped_handle_traps_in_the_world(things: Path) -> None:
    forged = r"99 is not a handle .*\[invalid-handle\]"
    with Session(things) as session:
        with pytest.raises(GuestTrap, match=forged):
            session.call("forge", 99)
        with pytest.raises(GuestTrap, match=r"(?s)trapped before.*\[instance-trapped\]"):
            session.call("add", 1, 2)  # a trap leaves the component unusable
    with Session(things) as session, pytest.raises(GuestTrap, match=r"invalid-handle"):
        session.call("drop-twice")


def test_an_imported_interface_is_served_by_python_through_the_canonical_abi(
        greeter: Path) -> None:
    received: list[str] = []

    def greet(name: str) -> str:
        received.append(name)
        return f"hello, {name}!"

    with Session(greeter, imports={"my:pkg/host": {"greet": greet}}) as session:
        assert session.call("hello", "wörld") == "hello, wörld!"
    assert received == ["wörld"]


def test_a_realloc_that_traps_while_a_host_answer_is_lowered_ends_the_guest(
        tmp_path: Path) -> None:
    text = (FIXTURES / "greeter.wat").read_text().replace(
        "(local.set $p (global.get $heap))",
        "(if (i32.gt_u (local.get 3) (i32.const 64)) (then unreachable))\n"
        "      (local.set $p (global.get $heap))")
    component = tmp_path / "greeter.wasm"
    component.write_bytes(parse_wat(text))
    with Session(component, imports={"my:pkg/host": {"greet": lambda name: name * 50}}
                 ) as session:
        assert session.call("hello", "a") == "a" * 50  # 50 bytes: realloc answers
        with pytest.raises(GuestTrap, match="unreachable"):
            session.call("hello", "ab")  # 100 bytes: realloc traps, and so does the call


DESCRIPTOR_PROBE = """
(component
  (type $fs (instance
    (export "descriptor" (type (sub resource)))
    (type (borrow 0))
    (type (enum "unknown" "block-device" "character-device" "directory" "fifo"
                "symbolic-link" "regular-file" "socket"))
    (export "descriptor-type" (type (eq 2)))
    (type (enum "access"))
    (export "error-code" (type (eq 4)))
    (type (result 3 (error 5)))
    (type (func (param "self" 1) (result 6)))
    (export "[method]descriptor.get-type" (func (type 7)))))
  (import "wasi:filesystem/types@0.2.3" (instance $t (type $fs)))
  (core module $Mem (memory (export "memory") 1))
  (core instance $mem (instantiate $Mem))
  (alias core export $mem "memory" (core memory $memory))
  (alias export $t "[method]descriptor.get-type" (func $get-type))
  (core func $lowered (canon lower (func $get-type) (memory $memory)))
  (core module $M
    (import "mem" "memory" (memory 1))
    (import "host" "get-type" (func $get-type (param i32 i32)))
    (func (export "probe") (param i32) (result i32)
      (call $get-type (local.get 0) (i32.const 16))
      (i32.load8_u (i32.const 16))))
  (core instance $m (instantiate $M
    (with "mem" (instance $mem))
    (with "host" (instance (export "get-type" (func $lowered))))))
  (func (export "probe") (param "handle" u32) (result u32)
    (canon lift (core func $m "probe")))
)
"""


def test_a_borrow_passed_to_a_host_function_must_be_a_live_handle_of_its_type(
        tmp_path: Path) -> None:
    component = tmp_path / "probe.wasm"
    component.write_bytes(parse_wat(DESCRIPTOR_PROBE))
    for forged in (0, 1, 99, 0xFFFF_FFFF):  # a trap locks the component: one session each
        with Session(component) as session, pytest.raises(
                GuestTrap, match=rf"{forged} is not a handle"):
            session.call("probe", forged)


def test_an_import_nothing_serves_is_refused_before_anything_runs(greeter: Path) -> None:
    with pytest.raises(LinkError, match=r"imports my:pkg/host@1\.0\.0, which nothing provides"):
        Session(greeter)


def test_components_run_under_the_component_model_semantics_only(things: Path) -> None:
    with pytest.raises(ValueError, match="component-model semantics, not transparent"):
        Session(things, semantics="transparent")


def test_two_components_in_one_world_hold_handles_in_their_own_tables(things: Path) -> None:
    with WasiWorld() as world:
        first, second = world.client(things), world.client(things)
        assert first.call("keep", 1) == 1 and second.call("keep", 2) == 1
        assert len(first.instance.holdings()) == len(second.instance.holdings()) == 1
        # Index 1 of the second is its own thing: reading it there gives its own rep.
        assert second.call("forge", 1) == 2


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "virtwasi", *args], capture_output=True,
                          text=True, check=False, timeout=120)


def test_run_invoke_reads_arguments_by_type_and_prints_json(things: Path) -> None:
    done = _cli("run", "--invoke", "add", str(things), "40", "2")
    assert (done.returncode, done.stdout, done.stderr) == (0, "42\n", "")
    done = _cli("run", "--invoke", "shout", str(things), "quiet 'please'")
    assert (done.returncode, done.stdout) == (0, '"QUIET \'PLEASE\'"\n')
    done = _cli("run", "--invoke", "add", str(things), "forty", "2")
    assert done.returncode == 2
    assert done.stderr.strip().endswith("argument 'a': 'forty' is not a s32 (JSON expected)")
    done = _cli("run", "--invoke", "forge", str(things), "3")
    assert done.returncode == 134 and "[invalid-handle]" in done.stderr


def test_run_refuses_a_component_whose_imports_nothing_serves_in_one_line(greeter: Path
                                                                          ) -> None:
    done = _cli("run", "--invoke", "hello", str(greeter), "x")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"virtwasi: {greeter}: the component imports my:pkg/host@1.0.0, which nothing "
        "provides"]


def test_a_world_file_runs_a_component_through_its_layers_as_it_runs_the_module(
        tmp_path: Path) -> None:
    from componentkit import componentize
    from conftest import FIXTURES, ROOT

    component = tmp_path / "fstool.wasm"
    componentize(FIXTURES / "fstool.wasm", component)
    world = (ROOT / "examples" / "quota.toml").read_text()
    world = world.replace('"../scenarios/programs/fstool.wasm"', f'"{component}"')
    world = world.replace('log = "/dev/stderr"', f'log = "{tmp_path / "calls.jsonl"}"')
    (tmp_path / "quota.toml").write_text(world)
    done = _cli("run", "--world", str(tmp_path / "quota.toml"))
    module = _cli("run", "--world", str(ROOT / "examples" / "quota.toml"))
    assert done.stdout.splitlines() == module.stdout.splitlines() == [
        "put /small.txt: ok", "put /big.txt: errno 19 (Quota exceeded)",
        "ls /: big.txt small.txt"]
    assert done.returncode == module.returncode == 1  # the big file failed
    # The audit layer saw the component's descriptors as handles of its own table.
    assert '"call":"open_at"' in (tmp_path / "calls.jsonl").read_text()


def test_run_refuses_a_broken_or_unsupported_component_in_one_line(tmp_path: Path) -> None:
    from conftest import ROOT

    whole = (ROOT / "scenarios" / "programs" / "holder.component.wasm").read_bytes()
    (tmp_path / "cut.wasm").write_bytes(whole[:3000])
    done = _cli("run", str(tmp_path / "cut.wasm"))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"virtwasi: {tmp_path / 'cut.wasm'}: at byte 2999: unexpected end of section"]
    (tmp_path / "async.wasm").write_bytes(
        parse_wat('(component (type (func async (param "x" u32))))'))
    done = _cli("run", str(tmp_path / "async.wasm"))
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1
    assert "async func types" in done.stderr
