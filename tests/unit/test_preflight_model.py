# SPDX-License-Identifier: Apache-2.0
"""The model directory the TensorRT-LLM stages read, found by preflight before anything is created
(mpi_trt_ansible.preflight.model): in docker mode through the shared mount, in local mode as written."""

from test_preflight_check import NODES, variables
from test_preflight_runtime import docker_task_vars, fake_controller, gpu_view, plugin_for

from mpi_trt_ansible import preflight
from mpi_trt_ansible.preflight import model


def test_a_path_under_the_shared_mount_is_a_path_of_the_docker_host():
    assert model.host_path("/TRTDir/Models/m", "docker", "/TRTDir", "/state/shared") == "/state/shared/Models/m"
    assert model.host_path("/TRTDir", "docker", "/TRTDir/", "/state/shared") == "/state/shared"
    assert model.host_path("/TRTDirX/m", "docker", "/TRTDir", "/s") is None  # not under the mount
    assert model.host_path("/opt/models/m", "docker", "/TRTDir", "/s") is None  # inside the image: stage 80
    assert model.host_path("/TRTDir/Models/m", "local", "/TRTDir", "/s") == "/TRTDir/Models/m"  # as written
    assert model.host_path("/TRTDir/m", "hosts", "/TRTDir", "/s") is None  # the preflight across hosts
    assert model.host_path("Models/m", "docker", "/TRTDir", "/s") is None


def test_a_tokenizer_in_the_model_directory_is_looked_at_once():
    values = {"cluster_mode": "docker", "cluster_shared_mount": "/TRTDir", "cluster_shared_host_dir": "/s",
              "cluster_trtllm_model_dir": "/TRTDir/m", "cluster_trtllm_tokenizer_dir": "/TRTDir/m/"}
    assert model.paths(values) == {"cluster_trtllm_model_dir": ("/TRTDir/m", "/s/m")}
    values["cluster_trtllm_tokenizer_dir"] = "/TRTDir/t"
    assert model.paths(values)["cluster_trtllm_tokenizer_dir"] == ("/TRTDir/t", "/s/t")


def test_dir_state(tmp_path):
    (tmp_path / "file").write_text("x")
    assert model.dir_state(str(tmp_path)) is True
    assert model.dir_state(str(tmp_path / "missing")) is False
    assert model.dir_state(str(tmp_path / "file")) is False
    assert model.dir_state(str(tmp_path / "file" / "below")) is False


def test_a_missing_model_is_refused_when_the_stages_will_run_naming_both_paths():
    v = gpu_view("1.2.0")
    v["values"].update(cluster_shared_host_dir="/state/mtrt/shared", cluster_shared_mount="/TRTDir",
                       cluster_trtllm_model_dir="/TRTDir/Models/chatglm2-6b",
                       cluster_trtllm_tokenizer_dir="/TRTDir/Models/chatglm2-6b")
    v["facts"]["dirs"] = {"/state/mtrt/shared/Models/chatglm2-6b": False}
    result = preflight.check(v)
    assert variables(result) == ["cluster_trtllm_model_dir"], result["msg"]
    problem = result["problems"][0]
    assert problem["value"] == "/TRTDir/Models/chatglm2-6b" and problem["host"] == "localhost"
    assert "/state/mtrt/shared of the docker host localhost (cluster_shared_host_dir, mounted at /TRTDir)" \
        in problem["message"] and "/state/mtrt/shared/Models/chatglm2-6b" in problem["fix"]
    # Not when the stages skip (auto, and the image has no tensorrt_llm).
    v["facts"]["runtime"]["tensorrt_llm"] = None
    assert preflight.check(v)["problems"] == []
    # Not when this user cannot tell (None).
    v = gpu_view("1.2.0")
    v["facts"]["dirs"] = {"/state/mtrt/shared/Models/chatglm2-6b": None}
    assert preflight.check(v)["problems"] == []


def test_the_action_looks_through_the_shared_mount_on_this_machine(tmp_path, monkeypatch):
    fake_controller(monkeypatch, gpus=[0, 1])
    shared = tmp_path / "shared"
    task_vars = docker_task_vars(tmp_path, cluster_shared_host_dir=str(shared), cluster_shared_mount="/TRTDir",
                                 cluster_trtllm_enabled=True, cluster_trtllm_model_dir="/TRTDir/Models/m",
                                 cluster_trtllm_tokenizer_dir="/TRTDir/Models/m", cluster_nodes=[
                                     dict(NODES[0], gpus=[0], slots=1), dict(NODES[1], gpus=[1], slots=1)])
    result = plugin_for(task_vars).run(task_vars=task_vars)
    assert "cluster_trtllm_model_dir" in variables(result), result["msg"]
    (shared / "Models" / "m").mkdir(parents=True)
    result = plugin_for(task_vars).run(task_vars=task_vars)
    assert "cluster_trtllm_model_dir" not in variables(result), result["msg"]
