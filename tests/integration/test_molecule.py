# SPDX-License-Identifier: Apache-2.0
"""Molecule scenarios on the real local docker engine, and what teardown leaves behind.

Runs only with ``MTRT_INTEGRATION=1``. Each scenario gets its own state home
(keys, rendered config, shared directory) under pytest's tmp dir, with a file
placed in the shared directory beforehand: teardown must leave it in place.
"""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent

pytestmark = pytest.mark.skipif(os.environ.get("MTRT_INTEGRATION") != "1",
                                reason="needs docker; set MTRT_INTEGRATION=1")

SCENARIOS = {
    # scenario: (cluster name, docker network)
    "default": ("mtrt-molecule", "mtrt-molecule-net"),
    "trtllm": ("mtrt-trt", "mtrt-trt-net"),
    "serving": ("mtrt-srv", "mtrt-srv-net"),
    # cluster_mode hosts on three sim-host containers over real SSH (the network is the test's "fabric").
    "multihost": ("mtrt-mh", "mtrt-mh-fabric"),
}


def _docker(*args):
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True).stdout


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if (ROOT / "molecule" / s).is_dir()])
def test_scenario_passes_and_teardown_keeps_shared_data(scenario, tmp_path):
    cluster, network = SCENARIOS[scenario]
    shared = tmp_path / "state" / cluster / "shared"
    shared.mkdir(parents=True)
    sentinel = shared / "user-model.bin"
    sentinel.write_bytes(b"weights the user made")
    env = dict(os.environ, MTRT_STATE_HOME=str(tmp_path / "state"),
               PATH="%s:%s" % (BIN, os.environ.get("PATH", "")))

    proc = subprocess.run([str(BIN / "molecule"), "test", "-s", scenario, "--no-command-borders"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    log = tmp_path / "molecule.log"
    log.write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, "molecule test -s %s failed; last lines:\n%s" % (
        scenario, "\n".join((proc.stdout + proc.stderr).splitlines()[-60:]))

    left = _docker("ps", "-aq", "--filter", "label=mtrt.cluster=%s" % cluster).split()
    assert left == [], "teardown left containers of %s: %s" % (cluster, left)
    assert network not in _docker("network", "ls", "--format", "{{.Name}}").split()
    assert sentinel.read_bytes() == b"weights the user made"
    if scenario == "serving":
        # Teardown stopped serving and removed its proxy, and kept every model repository.
        assert _docker("ps", "-aq", "--filter", "name=^/mtrt-srv-serve-proxy$").split() == []
        for name in ("inst0", "inst1", "orchestrator"):
            assert (shared / "triton" / cluster / name / "ensemble" / "config.pbtxt").is_file(), name
    assert (tmp_path / "state" / cluster / "ssh" / "id_ed25519").stat().st_mode & 0o777 == 0o600
