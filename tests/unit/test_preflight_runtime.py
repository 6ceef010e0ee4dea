# SPDX-License-Identifier: Apache-2.0
"""What the ranks' interpreter holds, read by preflight before anything is created (mpi_trt_ansible.preflight.runtime):
the TensorRT-LLM version that request_problems gets, the gate of cluster_trtllm_enabled, the probe in local mode
(a real interpreter), in docker modes (cached by image ID) and in hosts mode (the machines' facts)."""

import copy
import json
import os
import sys
import time
from types import SimpleNamespace

from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar
from conftest import FIXTURES, load_action
from test_preflight_check import LISTING, NODES, FakeHostvars, values, variables, view

from mpi_trt_ansible import preflight
from mpi_trt_ansible.preflight import runtime

IMAGE = {"Id": "sha256:" + "ab" * 32, "RepoTags": ["tensorrt_llm/release:0.9.0"], "Labels": {}}


def answer(version=None, mpi4py="3.1.4", python="python3", real="/usr/bin/python3.10"):
    """A probe's answer as the probe script prints it."""
    return {"found": True, "python": python, "realpath": real, "python3": real, "tensorrt_llm": version,
            "mpi4py": mpi4py, "mpi4py_error": None if mpi4py else "ModuleNotFoundError: No module named 'mpi4py'"}


def gpu_view(version, **settings):
    """Two nodes, one GPU each, on a docker host with two; the base image holds tensorrt_llm ``version``."""
    v = view()
    v["facts"].update(host_gpus=[0, 1], runtime=answer(version))
    v["facts"]["docker"]["images"].append(copy.deepcopy(IMAGE))
    v["nodes"][0].update(gpus=[0], slots=1)
    v["nodes"][1].update(gpus=[1], slots=1)
    v["values"].update(dict(dict(cluster_image_base="tensorrt_llm/release:0.9.0", cluster_trtllm_model_name="",
                                 cluster_trtllm_tp_size=2, cluster_trtllm_pp_size=1), **settings))
    return v


# --- the probe's answer -------------------------------------------------------------------------------------

def test_the_answer_is_found_after_an_entrypoint_banner():
    text = "== TensorRT-LLM ==\nNVIDIA Release 24.01\n" + runtime.MARKER + json.dumps(answer("0.9.0")) + "\n"
    assert runtime.parse(text)["tensorrt_llm"] == "0.9.0"
    assert runtime.parse("no marker here") is None and runtime.parse(runtime.MARKER + "{broken") is None


def test_the_probe_runs_a_real_interpreter_and_names_one_that_is_missing():
    info = runtime.probe_python(sys.executable)
    assert info["found"] is True and info["realpath"] == os.path.realpath(sys.executable)
    assert "tensorrt_llm" in info and ("mpi4py" in info)
    missing = runtime.probe_python("/nonexistent/python3")
    assert missing["found"] is False and "FileNotFoundError" in missing["error"]
    silent = runtime.probe_python("/bin/true")  # runs, but answers nothing
    assert silent["found"] is False and "without answering" in silent["error"]


def test_the_image_probe_runs_once_per_image_id(tmp_path):
    calls = []

    def probe(image_id, python, **kwargs):
        calls.append((image_id, python, kwargs))
        return answer("0.9.0")

    first = runtime.cached_image_probe("sha256:one", "python3", str(tmp_path / "state"), probe=probe, label="c")
    again = runtime.cached_image_probe("sha256:one", "python3", str(tmp_path / "state"), probe=probe, label="c")
    assert first["tensorrt_llm"] == again["tensorrt_llm"] == "0.9.0"
    assert first["cached"] is False and again["cached"] is True and len(calls) == 1
    assert calls[0] == ("sha256:one", "python3", {"label": "c"})
    assert oct((tmp_path / "state" / runtime.CACHE_FILE).stat().st_mode & 0o777) == "0o600"
    # Another image, or another interpreter in it, is another probe.
    runtime.cached_image_probe("sha256:two", "python3", str(tmp_path / "state"), probe=probe)
    runtime.cached_image_probe("sha256:one", "/opt/venv/bin/python", str(tmp_path / "state"), probe=probe)
    assert len(calls) == 3


def test_the_local_probe_runs_again_only_when_a_directory_it_read_changed(tmp_path):
    site = tmp_path / "site-packages"
    site.mkdir()
    calls = []

    def probe(python, **kwargs):
        calls.append(python)
        return dict(answer(None), realpath=os.path.realpath(sys.executable),
                    sys_path=[str(site), str(tmp_path / "user-site-not-yet")])

    state = str(tmp_path / "state")
    assert runtime.cached_local_probe(sys.executable, state, probe=probe)["cached"] is False
    assert runtime.cached_local_probe(sys.executable, state, probe=probe)["cached"] is True and len(calls) == 1
    # pip install adds a directory to site-packages: its modification time changes.
    (site / "tensorrt_llm-1.2.0.dist-info").mkdir()
    os.utime(site, ns=(1, time.time_ns() + 10 ** 9))
    assert runtime.cached_local_probe(sys.executable, state, probe=probe)["cached"] is False and len(calls) == 2
    # A user site that appears (pip install --user) is a change too.
    (tmp_path / "user-site-not-yet").mkdir()
    assert runtime.cached_local_probe(sys.executable, state, probe=probe)["cached"] is False and len(calls) == 3
    # A wrapper (a pyenv shim) may choose another interpreter next time: not kept.
    shim = tmp_path / "python3-shim"
    shim.write_text("#!/bin/sh\nexec %s \"$@\"\n" % sys.executable)
    shim.chmod(0o755)
    for _ in range(2):
        assert runtime.cached_local_probe(str(shim), state, probe=probe)["cached"] is False
    # The real interpreter names what it reads.
    real = runtime.probe_python(sys.executable)
    assert any(path.endswith("site-packages") for path in real["sys_path"])


def test_a_probe_that_could_not_run_is_not_kept(tmp_path):
    calls = []

    def probe(image_id, python, **kwargs):
        calls.append(image_id)
        return {"error": "ReadTimeout: docker did not answer"}

    for _ in range(2):
        assert "error" in runtime.cached_image_probe("sha256:one", "python3", str(tmp_path), probe=probe)
    assert len(calls) == 2 and not (tmp_path / runtime.CACHE_FILE).exists()


def test_the_image_id_comes_from_the_listing_preflight_already_read():
    listing = {"images": [IMAGE, {"Id": "sha256:l", "RepoTags": ["mtrt-base:latest"]}]}
    assert runtime.image_id(listing, "tensorrt_llm/release:0.9.0") == IMAGE["Id"]
    assert runtime.image_id(listing, "mtrt-base") == "sha256:l"
    assert runtime.image_id(listing, "missing:1") is None


# --- the gate of cluster_trtllm_enabled and the version request_problems gets ---------------------------------

def test_the_version_of_the_base_image_reaches_request_problems_before_anything_is_created():
    result = preflight.check(gpu_view("1.2.0"))
    assert result["problems"] == [] and result["checked"]["tensorrt_llm"] == "1.2.0", result["msg"]
    # 0.9.0 always uses gpus_per_node 8: rank 1 would ask for GPU 1 of a node that has one.
    result = preflight.check(gpu_view("0.9.0"))
    assert "node_gpus" in variables(result), result["msg"]
    # A version the project does not serve is refused here, not in stage 80.
    result = preflight.check(gpu_view("0.8.0"))
    assert "cluster_image_base" in variables(result) and "0.8.0" in result["msg"], result["msg"]
    # Family per version: 0.9.0's gpt model builds no pipeline stages (llama's does; 0.10.0 added them to gpt).
    result = preflight.check(gpu_view("1.2.0", cluster_trtllm_family="gpt", cluster_trtllm_tp_size=1,
                                      cluster_trtllm_pp_size=2))
    assert variables(result) == [], result["msg"]
    result = preflight.check(gpu_view("0.9.0", cluster_trtllm_family="gpt", cluster_trtllm_tp_size=1,
                                      cluster_trtllm_pp_size=2))
    assert "cluster_trtllm_pp_size" in variables(result) and "0.9.0" in result["msg"], result["msg"]
    # pp limits per version: 1.2's chatglm converter asserts pp_size == 1.
    result = preflight.check(gpu_view("1.2.0", cluster_trtllm_tp_size=1, cluster_trtllm_pp_size=2))
    assert "cluster_trtllm_pp_size" in variables(result), result["msg"]


def test_auto_skips_the_stages_on_an_image_without_tensorrt_llm_and_true_is_refused():
    v = gpu_view(None, cluster_trtllm_tp_size="two")
    result = preflight.check(v)
    assert result["problems"] == [] and result["checked"]["trtllm"] is False, result["msg"]
    v["values"]["cluster_trtllm_enabled"] = True
    result = preflight.check(v)
    problem = next(p for p in result["problems"] if p["variable"] == "cluster_trtllm_enabled")
    assert problem["value"] is True
    assert problem["host"] == "localhost"
    assert "(cluster_mpi_python) python3 in image tensorrt_llm/release:0.9.0 on the docker host localhost has no " \
        "tensorrt_llm" in problem["message"]
    assert "cluster_image_base" in problem["fix"] and "auto" in problem["fix"]
    assert "cluster_trtllm_tp_size" in variables(result)  # every problem at once


def test_true_without_gpus_is_refused_naming_the_docker_host():
    v = view()
    v["values"]["cluster_trtllm_enabled"] = "true"
    problem = preflight.check(v)["problems"][0]
    assert problem["variable"] == "cluster_trtllm_enabled" and problem["host"] == "localhost"
    assert "no GPU the ranks could use is on the docker host localhost" in problem["message"]
    # The offline Debian base has no tensorrt_llm either: both reasons in one problem.
    v["facts"]["runtime"] = runtime.offline_base("python3")
    problem = preflight.check(v)["problems"][0]
    assert " and the ranks' interpreter (cluster_mpi_python) python3 in image of the offline Debian base" \
        in problem["message"]


def test_an_unknown_runtime_keeps_todays_decision():
    """Not read (hosts mode, a missing base image): auto runs where there are GPUs, without a version."""
    v = gpu_view("0.9.0")
    v["facts"]["runtime"] = None
    result = preflight.check(v)
    assert result["checked"]["trtllm"] is True and result["checked"]["tensorrt_llm"] is None


def test_a_probe_that_could_not_run_is_a_problem_of_the_image():
    v = gpu_view("0.9.0")
    v["facts"]["runtime"] = {"error": "APIError: 500 Server Error: exec format error"}
    problem = preflight.check(v)["problems"][0]
    assert problem["variable"] == "cluster_image_base" and problem["value"] == "tensorrt_llm/release:0.9.0"
    assert "exec format error" in problem["message"] and "docker run --rm --network none" in problem["fix"]


# --- the action: where it reads the interpreter, and what a warm run costs ----------------------------------------

def plugin_for(task_vars, check_mode=False):
    action = load_action("preflight_check")
    task = SimpleNamespace(args={}, async_val=0, check_mode=check_mode, diff=False, action="preflight_check")
    connection = SimpleNamespace(transport="local", _shell=SimpleNamespace(tmpdir="/nonexistent"))
    return action.ActionModule(task, connection, play_context=None, loader=DataLoader(),
                               templar=Templar(loader=DataLoader(), variables=task_vars), shared_loader_obj=None)


def docker_task_vars(tmp_path, **changes):
    task_vars = dict(values(), groups={"nodes": ["node1", "node2"]},
                     hostvars=FakeHostvars(node1={"node_ip": "192.168.123.111"},
                                           node2={"node_ip": "192.168.123.112"}, localhost={}))
    task_vars.update(cluster_state_dir=str(tmp_path / "state"), cluster_image_base="tensorrt_llm/release:0.9.0",
                     **changes)
    return task_vars


def fake_controller(monkeypatch, gpus=()):
    action = load_action("preflight_check")
    listing = copy.deepcopy(LISTING)
    listing["images"].append(copy.deepcopy(IMAGE))
    monkeypatch.setattr(action.facts, "docker_listing", lambda cluster: copy.deepcopy(listing))
    monkeypatch.setattr(action.facts, "host_gpus", lambda: list(gpus))
    monkeypatch.setattr(action.facts, "routes", lambda: [])
    calls = []

    def probe(image, python, **kwargs):
        calls.append((image, python))
        return answer("0.8.0")
    monkeypatch.setattr(runtime, "probe_image", probe)
    monkeypatch.setattr(runtime.cached_image_probe, "__defaults__", (probe,))
    return calls


def test_the_action_reads_the_version_in_the_base_image_once_per_image_id(tmp_path, monkeypatch):
    calls = fake_controller(monkeypatch, gpus=[0, 1])
    task_vars = docker_task_vars(tmp_path, cluster_trtllm_enabled=True, cluster_nodes=[
        dict(NODES[0], gpus=[0], slots=1), dict(NODES[1], gpus=[1], slots=1)])
    cold = plugin_for(task_vars).run(task_vars=task_vars)
    assert calls == [(IMAGE["Id"], "python3")]
    assert "cluster_image_base" in variables(cold) and "0.8.0" in cold["msg"], cold["msg"]
    started = time.perf_counter()
    warm = plugin_for(task_vars).run(task_vars=task_vars)
    took = time.perf_counter() - started
    assert calls == [(IMAGE["Id"], "python3")], "a warm run started another probe"
    assert warm["checked"]["runtime_cached"] is True and warm["problems"] == cold["problems"]
    assert took < 2.0, "a warm preflight took %.2f s" % took
    cache = json.loads((tmp_path / "state" / runtime.CACHE_FILE).read_text())
    assert [key.split()[1:] for key in cache] == [[IMAGE["Id"], "python3"]]


def test_the_action_reads_the_controllers_interpreter_in_local_mode(tmp_path, monkeypatch):
    fake_controller(monkeypatch)
    task_vars = docker_task_vars(tmp_path, cluster_mode="local", cluster_mpi_python=sys.executable,
                                 cluster_trtllm_enabled=True)
    task_vars["groups"] = {"nodes": ["node1"]}
    task_vars["cluster_nodes"] = [dict(NODES[0], slots=1)]
    result = plugin_for(task_vars).run(task_vars=task_vars)
    refusal = [p for p in result["problems"] if p["variable"] == "cluster_trtllm_enabled"]
    # This test's interpreter has no tensorrt_llm, and this machine lists no GPU.
    assert refusal and "%s on localhost (local mode" % sys.executable in refusal[0]["message"], result["msg"]
    # Nor mpi4py (the project's venv does not install it): stage 60 would fail; refused here.
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        assert "cluster_mpi_python" in variables(result), result["msg"]


# --- hosts mode: the version the machines' interpreter holds ------------------------------------------------------

HOSTS_FACTS = json.loads((FIXTURES / "hosts" / "hosts_preflight_facts_three_simhosts.json").read_text())
HOSTS_NODES = [{"name": h, "ip": "10.77.0.1%d" % i, "slots": 1, "gpus": [0], "mpi_host": h}
               for i, h in enumerate(("mh-host1", "mh-host2", "mh-host3"), 1)]


def hosts_case(version, enabled="auto", gpus=(0,), **trtllm):
    facts = copy.deepcopy(HOSTS_FACTS)
    for host in facts.values():
        host["python"]["tensorrt_llm"] = version
        host["gpus"] = list(gpus)
    settings = dict(cluster_trtllm_enabled=enabled, cluster_trtllm_family="chatglm", cluster_trtllm_model_name="",
                    cluster_trtllm_tp_size=3, cluster_trtllm_pp_size=1, cluster_trtllm_dtype="float16",
                    cluster_trtllm_quantization="none", cluster_trtllm_max_batch_size=1,
                    cluster_trtllm_max_input_len=8, cluster_trtllm_engine_max_output_len=8,
                    cluster_trtllm_max_output_len=8, cluster_trtllm_num_beams=1,
                    cluster_trtllm_build_timeout_s=60, cluster_trtllm_run_timeout_s=60,
                    cluster_trtllm_model_dir="/srv/m", cluster_trtllm_tokenizer_dir="/srv/m",
                    cluster_trtllm_engine_root="/srv/e", cluster_trtllm_prompts=["hi"])
    settings.update(trtllm)
    return load_action("hosts_preflight").trtllm_checks(
        copy.deepcopy(HOSTS_NODES), {"mode": "hosts", "launcher": "mh-host1", "python": "python3",
                                     "trtllm": settings}, facts)


def test_hosts_mode_checks_the_request_against_the_machines_version():
    problems, version = hosts_case("1.2.0")
    assert problems == [] and version == "1.2.0"
    problems, version = hosts_case("0.9.0")  # gpus_per_node 8 at run time: ranks 1 and 2 ask for GPUs 1 and 2
    assert [p["variable"] for p in problems] == ["node_gpus", "node_gpus"] and version == "0.9.0"
    problems, version = hosts_case("0.8.0")
    assert [p["variable"] for p in problems] == ["cluster_image_base"] and problems[0]["host"] == "mh-host1"
    problems, _ = hosts_case("1.2.0", cluster_trtllm_family="chatglm", cluster_trtllm_tp_size=1,
                             cluster_trtllm_pp_size=3)  # 1.2's glm-4-9b converter asserts pp_size == 1
    assert [p["variable"] for p in problems] == ["cluster_trtllm_pp_size"]


def test_hosts_mode_auto_skips_without_tensorrt_llm_and_true_is_refused():
    assert hosts_case(None) == ([], None)
    assert hosts_case("0.8.0", gpus=()) == ([], "0.8.0")  # auto without GPUs: the stages skip
    problems, _ = hosts_case(None, enabled="true", gpus=())
    assert problems[0]["variable"] == "cluster_trtllm_enabled" and problems[0]["host"] == "mh-host1"
    assert "no GPU the ranks could use is on the machines mh-host1, mh-host2, mh-host3" in problems[0]["message"]
    assert "python3 on host mh-host1 has no tensorrt_llm" in problems[0]["message"]


def test_hosts_mode_action_reads_the_trtllm_settings_of_the_play():
    action = load_action("hosts_preflight")
    task_vars = {"cluster_trtllm_enabled": "auto", "cluster_trtllm_tp_size": 3, "other": 1}
    plugin = action.ActionModule(SimpleNamespace(args={}, async_val=0, check_mode=False, diff=False),
                                 SimpleNamespace(transport="local"), play_context=None, loader=DataLoader(),
                                 templar=Templar(loader=DataLoader(), variables=task_vars), shared_loader_obj=None)
    assert plugin._trtllm_settings(task_vars) == {"cluster_trtllm_enabled": "auto", "cluster_trtllm_tp_size": 3}


# --- the ranks' interpreter imports mpi4py (stage 60 and every later MPI stage) ------------------------------------

def local_view(info):
    v = view()
    v["values"].update(cluster_mode="local", cluster_mpi_python="/opt/venv/bin/python", cluster_mpi_launcher="node1",
                       cluster_ssh_user="mtrt")
    v["nodes"] = v["nodes"][:1]
    v["facts"].update(docker=None, runtime=info)
    return v


def test_local_mode_refuses_an_interpreter_without_mpi4py_naming_it_and_the_host():
    result = preflight.check(local_view(answer(None, mpi4py=None, python="/opt/venv/bin/python",
                                               real="/opt/venv/bin/python3.11")))
    assert variables(result) == ["cluster_mpi_python"], result["msg"]
    problem = result["problems"][0]
    assert problem["value"] == "/opt/venv/bin/python" and problem["host"] == "localhost"
    assert "'/opt/venv/bin/python' (/opt/venv/bin/python3.11) on localhost (local mode" in problem["message"]
    assert "No module named 'mpi4py'" in problem["message"] and "python3-mpi4py" in problem["fix"]
    missing = preflight.check(local_view({"found": False, "python": "/opt/venv/bin/python",
                                          "error": "FileNotFoundError: No such file or directory"}))
    assert variables(missing) == ["cluster_mpi_python"] and "cannot be run on localhost" in missing["msg"]
    assert preflight.check(local_view(answer(None)))["problems"] == []


def docker_view(info, python="python3"):
    v = view()
    v["values"].update(cluster_image_base="tensorrt_llm/release:0.9.0", cluster_mpi_python=python)
    v["facts"]["docker"]["images"].append(copy.deepcopy(IMAGE))
    v["facts"]["runtime"] = info
    return v


def test_docker_mode_refuses_an_interpreter_the_node_image_does_not_give_mpi4py():
    venv = answer(None, mpi4py=None, python="/opt/venv/bin/python", real="/opt/venv/bin/python3.10")
    venv["python3"] = "/usr/bin/python3.10"
    result = preflight.check(docker_view(venv, "/opt/venv/bin/python"))
    assert variables(result) == ["cluster_mpi_python"], result["msg"]
    assert "in image tensorrt_llm/release:0.9.0 on the docker host localhost does not import mpi4py" in result["msg"]
    assert "in the base image tensorrt_llm/release:0.9.0" in result["problems"][0]["fix"]
    gone = {"found": False, "python": "/opt/venv/bin/python", "error": 'exec: "/opt/venv/bin/python": stat: no such file'}
    result = preflight.check(docker_view(gone, "/opt/venv/bin/python"))
    assert variables(result) == ["cluster_mpi_python"] and "cannot be run in image" in result["msg"]


def test_docker_mode_leaves_debians_python3_to_the_node_image():
    """roles/node_image's Dockerfile installs python3 and python3-mpi4py where `python3 -c 'import mpi4py'` fails."""
    assert preflight.check(docker_view(answer(None, mpi4py=None)))["problems"] == []
    no_python = {"found": False, "python": "python3", "error": 'exec: "python3": executable file not found'}
    assert preflight.check(docker_view(no_python))["problems"] == []
    # /usr/local/bin/python3 (a python: image) is not the Debian python3 the package serves.
    local_python = answer(None, mpi4py=None, real="/usr/local/bin/python3.11")
    assert variables(preflight.check(docker_view(local_python))) == ["cluster_mpi_python"]
