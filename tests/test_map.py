"""``virtwasi map`` and ``virtwasi.map``: one real wasm tool (upcase.wasm) over many inputs,
on the local process pool and on a Dask cluster of two worker processes, with inputs and
outputs in a local S3 bucket (moto) or host folders.

What an item makes is compared with ``virtwasi run`` of the same item; poisoned inputs
trap or spin past the timeout; worker processes are killed mid-batch, and the command is
stopped with SIGINT mid-batch and resumed."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURES, ROOT

import virtwasi
from virtwasi.cli import main

UPCASE = str(FIXTURES / "upcase.wasm")
BATCH = str(FIXTURES / "batch.wasm")
Fresh = Callable[[], Any]


def contents(count: int) -> dict[str, bytes]:
    """``count`` inputs by name, of growing sizes; then one that traps and one that spins."""
    inputs = {f"item{i:03}.txt": f"item {i}: {'abc' * (i % 40)}\n".encode()
              for i in range(count - 2)}
    inputs["poison-trap.txt"] = b"trap\n"
    inputs["poison-spin.txt"] = b"spin\n"
    return inputs


def rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def by_name(table: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {Path(row["input"].split("::")[0]).name: row for row in table}


def ran(tmp_path: Path, name: str, data: bytes,
        capfd: pytest.CaptureFixture[str]) -> tuple[int, str, bytes | None]:
    """``virtwasi run upcase.wasm /in/NAME /o/out.txt`` on a copy of the input: its exit
    code, stdout and output file."""
    folder = tmp_path / "single"
    (folder / "in").mkdir(parents=True, exist_ok=True)
    (folder / "o").mkdir(exist_ok=True)
    (folder / "in" / name).write_bytes(data)
    (folder / "o" / "out.txt").unlink(missing_ok=True)
    capfd.readouterr()
    code = main(["run", "--timeout", "1", "--dir", f"{folder / 'in'}::/in", "--dir",
                 f"{folder / 'o'}::/o", UPCASE, f"/in/{name}", "/o/out.txt"])
    out = capfd.readouterr().out
    made = folder / "o" / "out.txt"
    return code, out, made.read_bytes() if made.exists() else None


def check_against_run(table: list[dict[str, Any]], inputs: dict[str, bytes], outputs:
                      dict[str, bytes], tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """Every item's row and published output are what ``virtwasi run`` of it makes."""
    named = by_name(table)
    assert len(table) == len(named) == len(inputs)
    for name, data in inputs.items():
        row = named[name]
        code, out, made = ran(tmp_path, name, data, capfd)
        assert row["exit_code"] == code, (name, row)
        if code == 0:
            assert row["status"] == "ok" and row["stdout"] == out.replace("/o/", "/")
            assert outputs[Path(name).stem] == made == data.upper()
        else:
            assert row["status"] == "failed" and Path(name).stem not in outputs


@pytest.fixture
def bucket(s3_url: str, s3_fresh: Fresh) -> str:
    """The test's bucket, holding 200 inputs under in/ (one traps, one spins)."""
    name = s3_url.removeprefix("s3://")
    s3_fresh().pipe({f"{name}/in/{key}": data for key, data in contents(200).items()})
    return name


def published(fs: Any, prefix: str) -> dict[str, bytes]:
    """The objects under ``prefix``, by stem."""
    return {Path(key).stem: fs.cat_file(key) for key in fs.find(prefix)}


def test_a_bucket_of_inputs_on_the_process_pool_makes_what_run_makes(
        bucket: str, s3_fresh: Fresh, tmp_path: Path,
        capfd: pytest.CaptureFixture[str]) -> None:
    table = tmp_path / "results.jsonl"
    code = main(["map", "--input", f"s3://{bucket}/in/*.txt", "--timeout", "1",
                 "--output", f"/out.txt=s3://{bucket}/out/{{stem}}.txt", "--results",
                 str(table), UPCASE, "/in/{name}", "/out.txt"])
    err = capfd.readouterr().err
    assert code == 1  # two items failed
    assert err.splitlines()[-1] == (
        "virtwasi map: 200 items: 198 ok, 2 failed (1 trapped, 1 timed out); "
        + err.splitlines()[-1].split("; ", 1)[1])
    found = rows(table)
    named = by_name(found)
    assert named["poison-trap.txt"]["error"] == (
        "trapped: wasm trap: wasm `unreachable` instruction executed")
    assert named["poison-spin.txt"]["error"] == "timed out after 1 s"
    assert all(row["outputs"] == [f"s3://{bucket}/out/{Path(row['input']).stem}.txt"]
               for row in found if row["status"] == "ok")
    check_against_run(found, contents(200), published(s3_fresh(), f"{bucket}/out"), tmp_path,
                      capfd)


@pytest.fixture(scope="module")
def dask_client(s3_endpoint: str) -> Iterator[Any]:
    """A Dask cluster of two worker processes on this machine (started after the S3
    endpoint, whose variables its workers inherit)."""
    import distributed  # the dev extra installs it

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        yield client


def test_the_same_batch_on_a_dask_cluster(bucket: str, s3_fresh: Fresh, dask_client: Any,
                                          tmp_path: Path,
                                          capfd: pytest.CaptureFixture[str]) -> None:
    table = tmp_path / "results.jsonl"
    batch = virtwasi.map(UPCASE, f"s3://{bucket}/in/*.txt", ["/in/{name}", "/out.txt"],
                         outputs={"/out.txt": f"s3://{bucket}/dask/{{stem}}.txt"}, timeout=1,
                         client=dask_client, results=table)
    assert (batch.total, batch.ok, batch.stopped) == (200, 198, False)
    found = rows(table)
    assert len({row["worker"] for row in found}) == 2  # both worker processes took items
    check_against_run(found, contents(200), published(s3_fresh(), f"{bucket}/dask"), tmp_path,
                      capfd)


def test_batches_one_after_another_on_one_client(dask_client: Any, tmp_path: Path) -> None:
    """Each batch ships the module anew: an earlier batch's copy, released as the next
    one starts, is never the one its tasks wait for."""
    (tmp_path / "in").mkdir()
    for i in range(4):
        (tmp_path / "in" / f"f{i}.txt").write_text(f"input {i}\n")
    for n in range(4):
        batch = virtwasi.map(UPCASE, str(tmp_path / "in"), ["/in/{name}", "/out.txt"],
                             outputs={"/out.txt": f"{tmp_path}/out{n}/{{stem}}.txt"},
                             client=dask_client)
        assert batch.ok == 4, [item.error for item in batch.items]


def slow_inputs(folder: Path, count: int, sleep_ms: int) -> dict[str, bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    inputs = {f"s{i:02}.txt": f"sleep {sleep_ms} item {i}\n".encode() for i in range(count)}
    for name, data in inputs.items():
        (folder / name).write_bytes(data)
    return inputs


def wait_for_rows(table: Path, count: int, proc: subprocess.Popen[str] | None = None) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if table.exists() and len(table.read_text().splitlines()) >= count:
            return
        assert proc is None or proc.poll() is None, "the batch ended too soon"
        time.sleep(0.02)
    raise AssertionError(f"{table} never had {count} rows")


def pool_workers(parent: int) -> list[int]:
    """The process-pool workers of ``parent`` (its spawned children that run items)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == parent and b"spawn_main" in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
    return found


def virtwasi_map(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "virtwasi", "map", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_a_worker_killed_mid_batch_costs_no_item(tmp_path: Path) -> None:
    inputs = slow_inputs(tmp_path / "in", 30, 150)
    table = tmp_path / "results.jsonl"
    proc = virtwasi_map("--input", str(tmp_path / "in"), "--workers", "2", "--output",
                        f"/out.txt={tmp_path}/out/{{stem}}.txt", "--results", str(table),
                        UPCASE, "/in/{name}", "/out.txt")
    wait_for_rows(table, 4, proc)
    workers = pool_workers(proc.pid)
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    found = rows(table)
    assert sorted(Path(row["input"]).name for row in found) == sorted(inputs)
    assert all(row["status"] == "ok" for row in found)
    for name, data in inputs.items():
        assert (tmp_path / "out" / name).read_bytes() == data.upper()


def test_a_dask_worker_killed_mid_batch_costs_no_item(dask_client: Any, tmp_path: Path) -> None:
    inputs = slow_inputs(tmp_path / "in", 24, 150)
    table = tmp_path / "results.jsonl"
    victim = next(iter(dask_client.run(os.getpid).values()))

    def kill_one() -> None:
        wait_for_rows(table, 4)
        os.kill(victim, signal.SIGKILL)

    killer = threading.Thread(target=kill_one)
    killer.start()
    batch = virtwasi.map(UPCASE, str(tmp_path / "in"), ["/in/{name}", "/out.txt"],
                         outputs={"/out.txt": f"{tmp_path}/out/{{stem}}.txt"},
                         client=dask_client, results=table)
    killer.join()
    assert victim not in dask_client.run(os.getpid).values()  # it was lost, and replaced
    found = rows(table)
    assert batch.ok == len(found) == len(inputs)
    assert sorted(Path(row["input"]).name for row in found) == sorted(inputs)
    for name, data in inputs.items():
        assert (tmp_path / "out" / name).read_bytes() == data.upper()


def test_ctrl_c_mid_batch_publishes_nothing_half_done_and_resume_finishes(
        s3_url: str, s3_fresh: Fresh, tmp_path: Path) -> None:
    bucket = s3_url.removeprefix("s3://")
    inputs = slow_inputs(tmp_path / "in", 30, 300)
    table = tmp_path / "results.jsonl"
    command = ["--input", str(tmp_path / "in"), "--workers", "2", "--output",
               f"/out.txt=s3://{bucket}/out/{{stem}}.txt", "--results", str(table), UPCASE,
               "/in/{name}", "/out.txt"]
    proc = virtwasi_map(*command)
    wait_for_rows(table, 4, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "stopped; the table lists what finished" in err
    done = rows(table)
    assert all(row["status"] == "ok" for row in done) and 4 <= len(done) < len(inputs)
    stored = published(s3_fresh(), f"{bucket}/out")
    # Exactly the finished items' outputs, each whole: nothing of an unfinished item.
    assert set(stored) == {Path(row["input"]).stem for row in done}
    assert all(stored[stem] == inputs[f"{stem}.txt"].upper() for stem in stored)

    resumed = virtwasi_map("--resume", str(table), *command)
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert f"{len(done)} done before" in err
    final = rows(table)
    assert sorted(Path(row["input"]).name for row in final) == sorted(inputs)
    assert final[:len(done)] == done  # what finished before is kept as it was
    stored = published(s3_fresh(), f"{bucket}/out")
    assert stored == {Path(name).stem: data.upper() for name, data in inputs.items()}


def test_an_unreachable_store_is_retried_and_a_guest_exit_is_not(
        tmp_path: Path, unsaved_dir: Path, capfd: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "good.txt").write_bytes(b"fine\n")
    (tmp_path / "in" / "bad.txt").write_bytes(b"exit 3\n")
    table = tmp_path / "results.jsonl"
    code = main(["map", "--input", str(tmp_path / "in"), "--workers", "1", "--retries", "2",
                 "--mount-option", "s3.endpoint_url=http://127.0.0.1:9",
                 "--output", "/out.txt=s3://nowhere/{stem}.txt", "--results", str(table),
                 UPCASE, "/in/{name}", "/out.txt"])
    assert code == 1
    named = by_name(rows(table))
    good, bad = named["good.txt"], named["bad.txt"]
    assert (bad["status"], bad["exit_code"], bad["retries"]) == ("failed", 3, 0)
    assert "asks to exit 3" in bad["stderr"]
    assert (good["status"], good["exit_code"], good["retries"]) == ("error", 1, 2)
    assert good["error"].startswith("output s3://nowhere/good.txt: not saved (upload failed")
    [kept] = [p for p in unsaved_dir.rglob("good.txt")]
    assert kept.read_bytes() == b"FINE\n"
    capfd.readouterr()
    assert main(["unsaved"]) == 0
    assert "for s3://nowhere/good.txt" in capfd.readouterr().out


def test_an_item_that_exits_0_without_its_output_failed(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "quiet.txt").write_bytes(b"exit 0\n")  # writes nothing, exits 0
    batch = virtwasi.map(UPCASE, str(tmp_path / "in"), ["/in/{name}", "/out.txt"],
                         outputs={"/out.txt": f"{tmp_path}/out/{{stem}}.txt"}, workers=1)
    [item] = batch.items
    assert (item.status, item.exit_code, item.outputs) == ("failed", 0, ())
    assert item.error == "output /out.txt: the guest left nothing there"
    assert batch.summary().startswith("1 item: 0 ok, 1 failed (1 no output);")
    assert not (tmp_path / "out").exists()


def test_an_archive_of_inputs_and_a_folder_of_outputs(tmp_path: Path) -> None:
    """batch.wasm upper-cases a folder into another; each item's folder is published."""
    archive = tmp_path / "docs.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("a/one.txt", "one\n")
        z.writestr("two.txt", "two\n")
    batch = virtwasi.map(BATCH, f"zip::file://{archive}", ["/in", "/out"],
                         outputs={"/out/": f"{tmp_path}/done/{{index}}-{{stem}}"}, workers=1)
    assert batch.ok == 2
    assert sorted(item.outputs for item in batch.items) == [
        (f"{tmp_path}/done/0-one/one.txt",), (f"{tmp_path}/done/1-two/two.txt",)]
    assert (tmp_path / "done" / "0-one" / "one.txt").read_text() == "ONE\n"
    assert [item.input for item in sorted(batch.items, key=lambda i: i.index)] == [
        f"zip://a/one.txt::file://{archive}", f"zip://two.txt::file://{archive}"]


def test_templates_fill_mounts_and_arguments_and_relative_paths_stay_where_given(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    """Each input is a zip, served at /site through a mount template."""
    for name in ("first", "second"):
        with zipfile.ZipFile(tmp_path / f"{name}.zip", "w") as z:
            z.writestr("note.txt", f"note of {name}")
    (tmp_path / "list.txt").write_text("first.zip\nsecond.zip\n")
    monkeypatch.chdir(tmp_path)
    code = main(["map", "--input-list", "list.txt", "--input-at", "none", "--workers", "1",
                 "--mount", "/site=zip::file://{path}", "--output", "/o.txt=out/{stem}.txt",
                 "--results", "-", str(FIXTURES / "fstool.wasm"), "cat", "/site/note.txt",
                 "ls", "/site", "put", "/o.txt", "{index}-{stem}"])
    out = capfd.readouterr().out
    assert code == 0
    named = by_name([json.loads(line) for line in out.splitlines()])
    assert named["first.zip"]["stdout"].splitlines() == [
        "cat /site/note.txt: note of first", "ls /site: note.txt", "put /o.txt: ok"]
    assert (tmp_path / "out" / "first.txt").read_text() == "0-first"
    assert (tmp_path / "out" / "second.txt").read_text() == "1-second"


@pytest.mark.parametrize(("words", "message"), [
    ([], "map: give the inputs: --input GLOB|FOLDER|FILE, or --input-list FILE"),
    (["--input", "{in}/nothing-*"], "map: no inputs: {in}/nothing-* named none"),
    (["--input", "{in}", "--output", "/o={out}/x.txt"],
     "output /o={out}/x.txt: items 0 and 1 would both publish {out}/x.txt: name it with "
     "{{stem}}, {{name}} or {{index}}"),
    (["--input", "{in}", "--output", "/in/x={out}/{{stem}}"],
     "output /in/x: not in a tree of the item's own (a mem:// mount, or the default /): "
     "shared mounts and the input are read-only"),
    (["--input", "{in}", "--output", "/o={out}/{{size}}"],
     "output /o: unknown field {{size}} (there are: {{path}}, {{name}}, {{stem}}, "
     "{{index}}; write {{{{ and }}}} for braces)"),
    (["--input", "{in}", "--dir", "{in}::/data", "--overlay", "/data={out}"],
     "overlay /data: its changes would be shared by every item; an item's writes stay in "
     "its own tree (an upper layer of mem://)"),
    (["--input", "{in}", "--retries", "-1"], "argument --retries: want a whole number"),
])
def test_mistakes_are_one_line_and_run_nothing(words: list[str], message: str, tmp_path: Path,
                                               capfd: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.txt", "b.txt"):
        (folder / name).write_text("x\n")
    given = [w.format(**{"in": folder, "out": tmp_path / "out"}) for w in words]
    try:
        code = main(["map", *given, UPCASE, "/in/{name}", "/o"])
    except SystemExit as exc:  # argparse's own refusal
        code = int(exc.code or 0)
    err = capfd.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert message.format(**{"in": folder, "out": tmp_path / "out"}) in err
    assert not (tmp_path / "out").exists()


def test_parquet_is_asked_for_and_needs_pyarrow(tmp_path: Path,
                                                capfd: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text("a\n")
    table = tmp_path / "results.parquet"
    code = main(["map", "--input", str(tmp_path / "in"), "--workers", "1", "--results",
                 str(table), UPCASE, "/in/{name}", "/o"])
    try:
        import pyarrow.parquet
    except ImportError:
        assert code == 2 and capfd.readouterr().err == (
            "virtwasi: a Parquet results table needs pyarrow (pip install pyarrow); or "
            "write JSON lines (--results PATH.jsonl)\n")
        assert not table.exists()
        return
    assert code == 0
    [row] = pyarrow.parquet.read_table(table).to_pylist()
    assert row["status"] == "ok" and row["input"] == str(tmp_path / "in" / "a.txt")


def test_help_explains_templates_outputs_and_exit_codes() -> None:
    done = subprocess.run([sys.executable, "-m", "virtwasi", "map", "--help"],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    text = " ".join(done.stdout.split())
    assert done.returncode == 0
    for words in ("{path}", "{stem}", "{index:05d}", "--output GUEST=URL", "--scheduler ADDRESS",
                  "--resume RESULTS", "Exit codes: 0 every item ok; 1 an item failed"):
        assert words in text, words
