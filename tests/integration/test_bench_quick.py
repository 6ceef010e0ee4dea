# SPDX-License-Identifier: Apache-2.0
"""The bring-up benchmark (bench/run.py) in quick mode: N=2, one repeat, on the real docker engine.

Keeps the benchmark working without running the full one (about half an hour). Runs only with
``MTRT_INTEGRATION=1``. It uses names of its own (cluster mtrt-benchq, floor network bqfloor-net,
subnets 192.168.152/153.0/24), so it can run beside a full benchmark or another cluster.

    MTRT_INTEGRATION=1 .venv/bin/python -m pytest tests/integration/test_bench_quick.py -q
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
KINDS = ("floor_up", "floor_down", "ours_cold", "ours_warm", "ours_down")

pytestmark = pytest.mark.skipif(os.environ.get("MTRT_INTEGRATION") != "1",
                                reason="needs docker; set MTRT_INTEGRATION=1")


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--out", str(out),
         "--cluster", "mtrt-benchq", "--subnet", "192.168.152", "--node-prefix", "bqn",
         "--floor-net", "bqfloor-net", "--floor-subnet", "192.168.153", "--floor-prefix", "bqfl"],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
    files = sorted(out.glob("bench-*.json"))
    data = json.loads(files[0].read_text()) if files else None
    return proc, data, out


def test_quick_run_succeeds(quick):
    proc, data, _ = quick
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert data is not None and "aborted" not in data
    # The table and the targets are printed.
    assert "ours cold" in proc.stdout and "target cold(8) / floor(8)" in proc.stdout


def test_json_structure(quick):
    _, data, _ = quick
    assert data["schema"] == 1 and data["date"]
    machine = data["machine"]
    for key in ("nproc", "memory_gib", "docker", "ansible_core", "loadavg_start", "loadavg_end"):
        assert machine.get(key), key
    assert data["config"]["nodes"] == [2] and data["config"]["repeats"] == 1 and data["config"]["quick"]
    assert data["image_build_s"] > 0
    assert data["warnings"] == []  # the warm re-run reported changed=0


def test_every_step_timed_once_and_ok(quick):
    _, data, _ = quick
    assert sorted(r["kind"] for r in data["runs"]) == sorted(KINDS)
    for run in data["runs"]:
        assert run["n"] == 2 and run["ok"] and run["seconds"] > 0, run
    cold = next(r for r in data["runs"] if r["kind"] == "ours_cold")
    warm = next(r for r in data["runs"] if r["kind"] == "ours_warm")
    assert cold["changed"] > 0 and warm["changed"] == 0


def test_summary_ratios_and_targets(quick):
    _, data, _ = quick
    for kind in KINDS:
        point = data["summary"][kind]["2"]
        assert 0 < point["min"] <= point["median"] <= point["max"]
    ratios = data["ratios"]["2"]
    for key in ("cold_over_floor", "warm_over_floor", "down_over_floor_down"):
        assert ratios[key]["median"] > 0
    # The three targets need N=2, 8 and 16: in quick mode they are reported, not judged.
    assert len(data["targets"]) == 6
    assert {t["met"] for t in data["targets"]} == {None}


def test_plot_and_note_written(quick):
    _, data, out = quick
    png = out / pathlib.Path(data["files"]["png"]).name
    md = out / pathlib.Path(data["files"]["md"]).name
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10000
    assert "| N |" in md.read_text()


def test_nothing_left_behind(quick):
    names = subprocess.run(["docker", "ps", "-a", "--format", "{{.Names}}"], capture_output=True,
                           text=True, check=True).stdout.split()
    assert not [n for n in names if n.startswith(("bqn", "bqfl"))]
    nets = subprocess.run(["docker", "network", "ls", "--format", "{{.Name}}"], capture_output=True,
                          text=True, check=True).stdout.split()
    assert "mtrt-benchq-net" not in nets and "bqfloor-net" not in nets
