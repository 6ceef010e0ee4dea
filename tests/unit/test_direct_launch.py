# SPDX-License-Identifier: Apache-2.0
"""Direct launches (mpi_trt_ansible.direct): a launch module's run() on the launcher's Python without an
Ansible module run - the same result as the module run, from the same code, where it may run at all."""

import json
import shutil
import socket
import subprocess
import sys
from types import SimpleNamespace

import mpi_hello
import pytest

from conftest import FIXTURES, PLUGINS, ROOT

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from mpi_trt_ansible import direct  # noqa: E402

MODULES = PLUGINS / "modules"
DIRS = [str(PLUGINS / "module_utils")]
SCRIPT = str(ROOT / "roles/mpi_hello/files/mpi_hello.py")
NODE_PYTHON = "/usr/bin/python3"  # a Python without Ansible, as on a node


def replay(tmp_path, stdout, rc=0):
    """An mpirun that prints an Open MPI 4.1.4 capture and exits ``rc``."""
    path = tmp_path / "mpirun"
    path.write_text("#!/bin/sh\ncat %s\nexit %d\n" % (FIXTURES / "mpi" / stdout, rc))
    path.chmod(0o755)
    return str(path)


def run_direct(name, args, python=NODE_PYTHON):
    text = direct.prepare(name, str(MODULES / (name + ".py")), args, dirs=DIRS)
    out = subprocess.run([python, "-"], input=text, capture_output=True, text=True, timeout=120)
    found = direct.result_of(out.stdout)
    assert found is not None, out.stderr[-2000:]
    found.setdefault("failed", False)
    return found


def comparable(result):
    """A result without what differs between any two launches (times, launch ids, pids)."""
    drop = {"duration_s", "invocation", "command", "warnings"}
    return {k: v for k, v in result.items() if k not in drop}


def test_the_module_utils_a_module_needs_are_found_and_basic_is_not():
    source = (MODULES / "mpi_hello.py").read_text()
    assert direct.imported_names(source) == {"basic", "mpi_output", "mtrt_launch"}
    assert set(direct.closure(source, DIRS)) == {"mpi_output", "mtrt_launch", "mtrt_rules", "mtrt_explain", "mtrt_fileio",
                                                 "mtrt_launch_stop", "mtrt_proc"}
    assert direct.opted_in(source) and direct.opted_in((MODULES / "mpi_collectives.py").read_text())
    assert not direct.opted_in((MODULES / "gpu_check.py").read_text())  # not converted: a module run
    with pytest.raises(direct.NotDirect, match="defines no SPEC and run"):
        direct.prepare("gpu_check", str(MODULES / "gpu_check.py"), {}, dirs=DIRS)


def test_arguments_are_validated_as_the_module_would():
    spec = direct.module_spec("mpi_hello", (MODULES / "mpi_hello.py").read_text(), DIRS)
    params = direct.validate(spec, {"hosts": ["n1:2"], "script": "/s.py", "np": "4", "timeout_s": "9"})
    assert params["np"] == 4 and params["timeout_s"] == 9 and params["check_placement"] is True
    with pytest.raises(direct.NotDirect, match="script"):
        direct.validate(spec, {"hosts": ["n1:2"]})
    with pytest.raises(direct.NotDirect, match="one of the following is required: hostfile, hosts"):
        direct.validate(spec, {"script": "/s.py"})
    with pytest.raises(direct.NotDirect, match="colour"):
        direct.validate(spec, {"hosts": ["n1:2"], "script": "/s.py", "colour": "red"})


# A node's Python has no Ansible; local mode runs the controller's, which has it (the boot code uses
# the real ansible.module_utils package there and adds the project's names to it).
@pytest.mark.parametrize("python", [NODE_PYTHON, sys.executable], ids=["node-python", "controller-python"])
@pytest.mark.parametrize("capture, rc", [("hello_singleton_np2_tagged.stdout", 0),
                                         ("hello_rank2_exits_tagged.stdout", 3)])
def test_a_direct_launch_gives_the_module_runs_result(run_module, tmp_path, capture, rc, python):
    hosts = ["localhost:2"] if "np2" in capture else ["node1:2", "node2:2"]
    args = {"hosts": hosts, "script": SCRIPT, "mpirun": replay(tmp_path, capture, rc)}
    by_module = run_module(mpi_hello, args)
    by_direct = run_direct("mpi_hello", args, python=python)
    assert by_module["failed"] and by_direct["failed"]
    assert comparable(by_direct) == comparable(by_module)


@pytest.mark.skipif(not (shutil.which("mpirun") and subprocess.run(
    [NODE_PYTHON, "-c", "import mpi4py.MPI"], capture_output=True).returncode == 0),
    reason="needs mpirun and /usr/bin/python3 with mpi4py")
def test_a_real_direct_hello_on_local_slots(tmp_path):
    (tmp_path / "hostfile").write_text("localhost slots=3\n")
    res = run_direct("mpi_hello", {"hostfile": str(tmp_path / "hostfile"), "script": SCRIPT,
                                   "python": NODE_PYTHON, "extra_args": ["--oversubscribe"],
                                   "mca": {"btl": "self,vader,tcp", "mpi_yield_when_idle": "1"}, "timeout_s": 60})
    assert not res["failed"], res["msg"]
    assert res["world_size"] == 3 and res["ranks_per_host"] == {socket.gethostname(): 3}
    assert [r["rank"] for r in res["ranks"]] == [0, 1, 2] and res["ranks_silent"] == []


def test_a_direct_launch_that_cannot_start_says_why(tmp_path):
    res = run_direct("mpi_hello", {"hosts": ["localhost:1"], "script": SCRIPT,
                                   "mpirun": str(tmp_path / "no-such-mpirun")})
    assert res["failed"] and "mpirun not found on the launcher" in res["msg"]


def test_result_of_reads_the_last_json_line():
    assert direct.result_of('noise\n{"a": 1}\nmore noise {x}\n{"b": 2}\n') == {"b": 2}
    assert direct.result_of("Traceback (most recent call last):\n  ...\n") is None


@pytest.mark.parametrize("change, why", [
    (dict(check_mode=True), "check mode"),
    (dict(async_val=10), "async"),
    (dict(environment=[{}, {"X": "1"}]), "task environment"),
    (dict(become=True), "become"),
    (dict(transport="ssh"), "connection ssh"),
    (dict(interpreter="python3"), "interpreter 'python3'"),
    (dict(interpreter=None), "interpreter None"),
])
def test_anything_a_module_run_would_add_keeps_the_module_run(change, why):
    task = SimpleNamespace(check_mode=change.get("check_mode", False), async_val=change.get("async_val", 0),
                           environment=change.get("environment", []))
    connection = SimpleNamespace(transport=change.get("transport", "community.docker.docker"))
    play_context = SimpleNamespace(become=change.get("become", False))
    interpreter = change["interpreter"] if "interpreter" in change else "/usr/bin/python3"
    assert direct.eligible(task, connection, play_context, interpreter) == why
    assert direct.eligible(SimpleNamespace(check_mode=False, async_val=0, environment=[{}]),
                           SimpleNamespace(transport="local"), SimpleNamespace(become=False),
                           "/usr/bin/python3") is None


def test_the_program_is_plain_python_without_ansible(tmp_path):
    """The boot code imports nothing but the standard library (a node has no Ansible)."""
    text = direct.prepare("mpi_hello", str(MODULES / "mpi_hello.py"), {"hosts": ["n1:1"], "script": "/s"},
                          dirs=DIRS)
    head = text[:text.index("def main(")]
    assert "import ansible" not in head and "from ansible" not in head
    payload = json.loads(eval(text.rsplit("main(json.loads(", 1)[1].rsplit("))", 1)[0]))  # noqa: S307
    assert payload["params"]["np"] is None and payload["check_mode"] is False
