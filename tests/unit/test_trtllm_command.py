# SPDX-License-Identifier: Apache-2.0
"""The TensorRT-LLM rules of mpi_trt_ansible/trtllm.py: versions, requests, world, engine identity."""

import pytest
from ansible.module_utils import trtllm_command as tc

from mpi_trt_ansible import trtllm

MODEL = "/TRTDir/Models/chatglm2-6b"


def test_module_utils_is_the_package_file():
    """One file: module_utils/trtllm_command.py links to mpi_trt_ansible/trtllm.py."""
    assert tc.request_problems.__code__.co_code == trtllm.request_problems.__code__.co_code
    assert tc.__file__.endswith("trtllm_command.py") and trtllm.__file__.endswith("trtllm.py")


def settings(**kw):
    s = {"cluster_trtllm_enabled": "true", "cluster_trtllm_gpus_per_node": 0,
         "cluster_trtllm_family": "chatglm", "cluster_trtllm_model_name": "chatglm2_6b",
         "cluster_trtllm_model_dir": MODEL, "cluster_trtllm_tokenizer_dir": MODEL,
         "cluster_trtllm_dtype": "float16", "cluster_trtllm_quantization": "none",
         "cluster_trtllm_tp_size": 2, "cluster_trtllm_pp_size": 1, "cluster_trtllm_max_batch_size": 1,
         "cluster_trtllm_max_input_len": 1024, "cluster_trtllm_engine_max_output_len": 1024,
         "cluster_trtllm_extra_convert_args": [], "cluster_trtllm_extra_build_args": [],
         "cluster_trtllm_engine_root": "/TRTDir/engines", "cluster_trtllm_prompts": ["Hello"],
         "cluster_trtllm_max_output_len": 200, "cluster_trtllm_num_beams": 1,
         "cluster_trtllm_temperature": None, "cluster_trtllm_top_k": None, "cluster_trtllm_top_p": None,
         "cluster_trtllm_run_profiling": False, "cluster_trtllm_run_extra_args": [],
         "cluster_trtllm_build_timeout_s": 3600, "cluster_trtllm_run_timeout_s": 900}
    s.update({"cluster_trtllm_" + k: v for k, v in kw.items()})
    return s


NOTES = [{"name": "node1", "slots": 1, "gpus": [1]}, {"name": "node2", "slots": 1, "gpus": [2]}]


def variables(problems):
    return [p["variable"] for p in problems]


@pytest.mark.parametrize("text,key", [
    ("0.7.1", "0.7.1"), ("0.9.0", "0.9.0"), ("1.2.0", "1.2"), ("1.2.1", "1.2"),
    ("0.7.0", None), ("0.8.0", None), ("0.8.0.dev2024012300", None), ("0.9.0.dev2024040200", None),
    ("0.10.0", None), ("0.11.0", None), ("0.12.0", None), ("1.1.0", None), ("1.2.0rc3", None),
    ("1.3.0", None), ("latest", None)])
def test_served_versions(text, key):
    assert tc.version_key(text) == key
    assert (tc.version_problem(text) is None) == (key is not None)


def test_refused_version_says_why_and_what_to_use():
    msg = tc.version_problem("0.8.0.dev2024012300")
    assert msg.startswith("tensorrt_llm 0.8.0.dev2024012300 is not a version this project serves: only "
                          "0.7.1, 0.9.0 or 1.2.x have their command lines recorded")
    assert "Use a node image with tensorrt_llm 0.7.1, 0.9.0 or 1.2.x" in msg
    with pytest.raises(tc.TrtllmConfigError, match="0.12.0 is not a version this project serves"):
        tc.flow_for_version("0.12.0")
    problems = tc.request_problems(settings(), NOTES, "0.12.0")
    assert variables(problems) == ["cluster_image_base"] and problems[0]["value"] == "0.12.0"


def test_request_without_a_node_checks_values_and_the_world():
    assert tc.request_problems(settings(), NOTES) == []
    bad = tc.request_problems(settings(tp_size=0, family="mistral", dtype="fp8", quantization="int2",
                                       num_beams=0, prompts=[], model_dir="Models/x", enabled="maybe",
                                       extra_build_args="--x", top_k=-1), NOTES)
    assert set(variables(bad)) >= {"cluster_trtllm_tp_size", "cluster_trtllm_family", "cluster_trtllm_dtype",
                                   "cluster_trtllm_quantization", "cluster_trtllm_num_beams",
                                   "cluster_trtllm_prompts", "cluster_trtllm_model_dir",
                                   "cluster_trtllm_enabled", "cluster_trtllm_extra_build_args",
                                   "cluster_trtllm_top_k"}
    for p in bad:
        assert set(p) == {"variable", "value", "message", "fix"} and p["fix"]
    family = next(p for p in bad if p["variable"] == "cluster_trtllm_family")
    assert family["value"] == "mistral" and "chatglm, llama, gpt, qwen" in family["fix"]


def test_text_integers_from_extra_vars_are_read_as_integers():
    assert tc.request_problems(settings(tp_size="2", pp_size="1"), NOTES) == []


def test_world_rule_tp_pp_slots_and_one_gpu_per_rank():
    four = tc.request_problems(settings(tp_size=4), NOTES)
    assert variables(four) == ["cluster_trtllm_tp_size x cluster_trtllm_pp_size"]
    assert four[0]["message"] == ("The engine needs tp_size x pp_size = 4 x 1 = 4 ranks, but the nodes have "
                                  "2 slots (node1:1, node2:1; one rank per slot).")
    two_slots = [{"name": "node1", "slots": 2, "gpus": [0]}]
    over = tc.request_problems(settings(), two_slots)
    assert variables(over) == ["node_slots"] and "Node node1 runs 2 TensorRT-LLM rank(s) but sees 1 GPU(s)" in over[0]["message"]
    assert tc.request_problems(settings(gpus_per_node=2), two_slots) == []
    uneven = tc.request_problems(settings(), [{"name": "a", "slots": 1, "gpus": [0]},
                                              {"name": "b", "slots": 1, "gpus": [0, 1]}])
    assert variables(uneven) == ["node_gpus"]


def test_fixed_gpus_per_node_versions_refuse_a_rank_without_its_gpu():
    # The notes' layout: one GPU per container. 0.7.1 and 0.9.0 always use gpus_per_node=8.
    for version in ("0.7.1", "0.9.0"):
        model_name = "chatglm2_6b" if version == "0.7.1" else ""
        problems = tc.request_problems(settings(model_name=model_name), NOTES, version)
        assert variables(problems) == ["node_gpus"], problems
        assert problems[0]["message"].startswith(
            "Rank 1 (node2) would ask for GPU 1 (rank 1 %% gpus_per_node 8), but node2 has 1 GPU(s): "
            "'invalid device ordinal'. tensorrt_llm %s always uses gpus_per_node=8" % version)
        assert problems[0]["fix"].startswith("Give node2 at least 2 GPUs (node_gpus; its ordinal 1 is the "
                                             "one rank 1 uses), or use tensorrt_llm 1.2.x")
    two = [{"name": "node1", "slots": 1, "gpus": [0, 1]}, {"name": "node2", "slots": 1, "gpus": [0, 1]}]
    assert tc.request_problems(settings(), two, "0.7.1") == []
    # 1.2 takes the GPUs per container from the engine: the notes' layout is served.
    assert tc.request_problems(settings(model_name=""), NOTES, "1.2.1") == []


def test_newest_version_needs_full_nodes_when_the_world_is_larger():
    nodes = [{"name": "a", "slots": 2, "gpus": [0, 1]}, {"name": "b", "slots": 1, "gpus": [0, 1]}]
    problems = tc.request_problems(settings(model_name="", tp_size=3), nodes, "1.2.1")
    assert variables(problems) == ["node_slots"] and "b runs 1" in problems[0]["message"]


def test_routing_families_model_name_and_pp_limits():
    two_gpus = [{"name": n, "slots": 1, "gpus": [0, 1]} for n in ("node1", "node2")]
    # The modern flow builds every family whose converter was recorded (llama, gpt, qwen too).
    for version in ("0.9.0", "1.2.1"):
        for family in ("llama", "gpt", "qwen"):
            assert tc.request_problems(settings(family=family, model_name=""), two_gpus, version) == []
    v09_pp = tc.request_problems(settings(family="gpt", model_name="", tp_size=1, pp_size=2), two_gpus, "0.9.0")
    assert variables(v09_pp) == ["cluster_trtllm_pp_size"] and v09_pp[0]["value"] == 2
    assert "tensorrt_llm 0.9.0" in v09_pp[0]["message"] and "models/gpt/model.py" in v09_pp[0]["message"]
    assert v09_pp[0]["fix"] == "Set cluster_trtllm_pp_size: 1 and put the ranks in cluster_trtllm_tp_size."
    assert tc.request_problems(settings(family="llama", model_name="", tp_size=1, pp_size=2), two_gpus, "0.9.0") == []
    assert tc.request_problems(settings(family="gpt", model_name="", tp_size=1, pp_size=2), two_gpus, "1.2.1") == []
    glm09 = tc.request_problems(settings(model_name="", tp_size=1, pp_size=2), two_gpus, "0.9.0")
    assert variables(glm09) == ["cluster_trtllm_pp_size"]
    assert "examples/chatglm/convert_checkpoint.py of 0.9.0 asserts pp_size == 1" in glm09[0]["message"]
    gpt = tc.request_problems(settings(family="gpt", model_name=""), NOTES, "0.7.1")
    assert variables(gpt) == ["cluster_trtllm_family"] and "hf_gpt_convert.py" in gpt[0]["message"]
    name = tc.request_problems(settings(model_name=""), NOTES, "0.7.1")
    assert "cluster_trtllm_model_name" in variables(name)
    extra = tc.request_problems(settings(), NOTES, "1.2.1")
    assert variables(extra) == ["cluster_trtllm_model_name"] and extra[0]["fix"] == 'Set cluster_trtllm_model_name: "".'
    pp_nodes = [{"name": n, "slots": 1, "gpus": [0, 1]} for n in ("a", "b")]
    pp = tc.request_problems(settings(model_name="", tp_size=1, pp_size=2), pp_nodes, "1.2.1")
    assert variables(pp) == ["cluster_trtllm_pp_size"]
    assert "glm-4-9b/convert_checkpoint.py asserts pp_size == 1" in pp[0]["message"]
    legacy_pp = tc.request_problems(settings(tp_size=1, pp_size=2),
                                    [{"name": n, "slots": 1, "gpus": list(range(8))} for n in ("a", "b")], "0.7.1")
    assert variables(legacy_pp) == ["cluster_trtllm_pp_size"] and "tp<world_size>_pp<pp>" in legacy_pp[0]["message"]


def test_engine_request_is_the_identity_and_names_the_engine():
    req = tc.engine_request(settings(num_beams=4, quantization="wo_int8"), "0.7.1", 1)
    assert req["max_beam_width"] == 4 and req["gpus_per_node"] == 1 and req["flow"] == "legacy"
    assert tc.engine_dir_name(req) == "chatglm2_6b-float16-wo_int8-tp2-pp1-beam4"
    base = tc.engine_hash_inputs(req)
    assert tc.engine_inputs_hash(base) == tc.engine_inputs_hash(dict(reversed(list(base.items()))))
    assert base["gpus_per_node"] is None       # 0.7.1 never reads it: not part of the key
    new = tc.engine_hash_inputs(tc.engine_request(settings(model_name=""), "1.2.1", 1))
    assert new["gpus_per_node"] == 1           # 1.2 writes it into the engine
    with pytest.raises(tc.TrtllmConfigError, match="pp_size 2 with tensorrt_llm 1.2.1"):
        tc.validate_request(tc.engine_request(settings(model_name="", pp_size=2), "1.2.1", 1))


def test_command_lines_per_version():
    legacy = tc.build_plan(tc.engine_request(settings(quantization="wo_int8"), "0.7.1", 1), "/ex", "/e/out", "/e/ck")
    assert legacy[0]["cwd"] == "/e/out" and legacy[0]["argv"] == [
        "python3", "/ex/chatglm/build.py", "--model_name", "chatglm2_6b", "--model_dir", MODEL,
        "--output_dir", "/e/out", "--dtype", "float16", "--tp_size", "2", "--pp_size", "1",
        "--world_size", "2", "--gpus_per_node", "1", "--max_batch_size", "1", "--max_input_len", "1024",
        "--max_output_len", "1024", "--max_beam_width", "1", "--use_weight_only", "--weight_only_precision", "int8"]
    qwen = tc.build_plan(tc.engine_request(settings(family="qwen", model_name=""), "0.7.1", 1), "/ex", "/o", "/c")
    assert qwen[0]["argv"][2:4] == ["--hf_model_dir", MODEL]
    v09 = tc.build_plan(tc.engine_request(settings(model_name=""), "0.9.0", 1), "/ex", "/o", "/c")
    assert v09[0]["argv"][1] == "/ex/chatglm/convert_checkpoint.py" and v09[0]["checkpoint_mapping"] is None
    assert v09[1]["argv"][-6:] == ["--max_output_len", "1024", "--max_beam_width", "1",
                                   "--use_custom_all_reduce", "disable"]
    new = tc.build_plan(tc.engine_request(settings(model_name="", engine_max_output_len=200), "1.2.1", 1),
                        "/ex", "/o", "/c")
    assert new[0]["argv"][1] == "/ex/models/core/glm-4-9b/convert_checkpoint.py"
    assert new[0]["checkpoint_mapping"] == {"gpus_per_node": 1}
    assert new[1]["argv"][-4:] == ["--max_seq_len", "1224", "--max_beam_width", "1"]
    assert "--gpus_per_node" not in new[1]["argv"] and "--use_custom_all_reduce" not in new[1]["argv"]
    # Each family's converter where that version keeps it.
    for version, family, path in (("0.9.0", "llama", "/ex/llama"), ("0.9.0", "gpt", "/ex/gpt"),
                                  ("0.9.0", "qwen", "/ex/qwen"), ("1.2.1", "llama", "/ex/models/core/llama"),
                                  ("1.2.1", "gpt", "/ex/models/core/gpt"), ("1.2.1", "qwen", "/ex/models/core/qwen")):
        plan = tc.build_plan(tc.engine_request(settings(family=family, model_name=""), version, 1), "/ex", "/o", "/c")
        assert plan[0]["argv"][1] == path + "/convert_checkpoint.py" and plan[1]["name"] == "trtllm-build"


def test_run_py_argv_and_gpus_per_node_fix():
    argv = tc.run_py_argv("0.7.1", "/app/ex/run.py", "/TRTDir/engines/e", MODEL, ["Hello", "second"], 1000,
                          temperature=0.7, top_k=5)
    assert argv == ["python3", "/app/ex/run.py", "--engine_dir", "/TRTDir/engines/e", "--tokenizer_dir", MODEL,
                    "--max_output_len", "1000", "--num_beams", "1", "--temperature", "0.7", "--top_k", "5",
                    "--input_text", "Hello", "second"]
    with pytest.raises(tc.TrtllmConfigError, match="0.7.1 has no --run_profiling"):
        tc.run_py_argv("0.7.1", "r", "e", "t", ["x"], 10, run_profiling=True)
    with pytest.raises(tc.TrtllmConfigError, match=r"input_texts\[1\] '--x'"):
        tc.run_py_argv("0.9.0", "r", "e", "t", ["ok", "--x"], 10)
    assert tc.gpus_per_node_fix("0.7.1", 1)["method"] == "fixed"
    assert tc.gpus_per_node_fix("0.9.0", 1)["gpus_per_node"] == 8
    new = tc.gpus_per_node_fix("1.2.1", 1)
    assert (new["method"], new["gpus_per_node"], new["run_args"]) == ("checkpoint_mapping", 1, ["--use_py_session"])


def test_launch_problems_from_the_engine():
    engine = {"tp": 2, "pp": 2}
    problems = tc.launch_problems("0.9.0", engine, 3, [("node1", 2), ("node2", 1)], 1, 8)
    assert variables(problems) == ["np", "node_slots"]
    assert problems[0]["message"] == "The engine needs 4 ranks (tp=2, pp=2); mpirun -np is 3."
    one = tc.launch_problems("0.9.0", {"tp": 2, "pp": 1}, 2, [("node2", 1), ("node1", 1)], 1, 8)
    assert one[0]["message"].startswith("Rank 1 (node1) would ask for GPU 1 (rank 1 % gpus_per_node 8)")
    assert tc.launch_problems("1.2.1", {"tp": 2, "pp": 1}, 2, [("node2", 1), ("node1", 1)], 1, 1) == []
    assert tc.rank_devices([("a", 2), ("b", 2)], 4, 2)[3] == {"host": "b", "device": 1}


def test_stage_decision_one_line_per_case():
    nodes = [{"name": "n1", "slots": 1, "gpus": [0]}]
    ok = {"n1": {"present": True, "supported": True, "version": "0.7.1"}}
    assert tc.stage_decision("false", None, {}, nodes)["reason"] == "cluster_trtllm_enabled is false"
    assert tc.stage_decision("auto", [], {}, nodes)["reason"].startswith("the docker host has no GPUs")
    assert tc.stage_decision("maybe", None, {}, nodes)["fail"] is True
    missing = tc.stage_decision("auto", [0], {"n1": {"present": False, "reason": "no dist"}}, nodes)
    assert not missing["run"] and not missing["fail"] and "no TensorRT-LLM on n1 (no dist)" in missing["reason"]
    assert tc.stage_decision("true", [0], {"n1": {"present": False}}, nodes)["fail"] is True
    assert tc.stage_decision("auto", [0], ok, nodes) == {"run": True, "fail": False, "reason": ""}
    assert "no GPUs pinned" in tc.stage_decision("auto", None, ok, [dict(nodes[0], gpus=[])])["reason"]
    assert tc.stage_decision("true", None, ok, [dict(nodes[0], gpus=[])], 1)["run"] is True


def test_node_problems_versions_and_dirs():
    facts = {"a": {"version": "0.7.1"}, "b": {"version": "0.9.0"}}
    problems = tc.node_problems(facts, {"a": {MODEL: True}, "b": {MODEL: False}}, settings())
    assert variables(problems) == ["cluster_image_base", "cluster_trtllm_model_dir"]
    assert problems[1]["message"] == "cluster_trtllm_model_dir %s is not a directory on node b." % MODEL
