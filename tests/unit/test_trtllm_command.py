"""Command construction, version rules, gpus_per_node fix and world contract."""

import pytest
from ansible.module_utils import trtllm_command as tc

V07 = "0.7.1"
MODEL = "/TRTDir/Models/chatglm2-6b"


def spec(**kw):
    raw = dict(version=V07, family="chatglm", model_name="chatglm2_6b", model_dir=MODEL,
               tp_size=2, gpus_per_node=1)
    raw.update(kw)
    return tc.normalize_engine_spec(raw)


@pytest.mark.parametrize("text,expected", [("0.7.1", (0, 7, 1)), ("0.8.0.dev2024012301", (0, 8, 0)),
                                           ("0.12.0", (0, 12, 0)), ("1.0.0rc1", (1, 0, 0)),
                                           ("0.9", (0, 9, 0))])
def test_parse_version(text, expected):
    assert tc.parse_version(text) == expected


def test_flow_per_version_and_refusals():
    assert tc.flow_for_version("0.7.1") == "legacy"
    assert tc.flow_for_version("0.8.0.dev2024012301") == "modern"
    assert tc.flow_for_version("0.12.0") == "modern"
    with pytest.raises(tc.TrtllmConfigError, match=r"0\.6\.1 has no examples/run\.py"):
        tc.flow_for_version("0.6.1")
    with pytest.raises(tc.TrtllmConfigError, match="not a version number"):
        tc.flow_for_version("latest")


def test_spec_validation_messages():
    with pytest.raises(tc.TrtllmConfigError, match="family 'mistral' is not supported; set the family to one of chatglm, gpt, llama, qwen"):
        spec(family="mistral")
    with pytest.raises(tc.TrtllmConfigError, match="model_name None: the legacy chatglm/build.py of tensorrt_llm 0.7.1 needs --model_name"):
        spec(model_name=None)
    with pytest.raises(tc.TrtllmConfigError, match="legacy llama/build.py has no --model_name"):
        spec(family="llama")
    with pytest.raises(tc.TrtllmConfigError, match="model_dir 'Models/x' must be an absolute path"):
        spec(model_dir="Models/x")
    with pytest.raises(tc.TrtllmConfigError, match="gpus_per_node=0"):
        spec(gpus_per_node=0)
    assert spec(version="0.9.0", model_name=None)["flow"] == "modern"


def test_engine_dir_names_differ_per_dtype_and_quantization():
    assert tc.engine_dir_name(spec()) == "chatglm2_6b-float16-tp2-pp1"
    assert tc.engine_dir_name(spec(quantization="wo_int8")) == "chatglm2_6b-float16-wo_int8-tp2-pp1"
    assert tc.engine_dir_name(spec(version="0.9.0", model_name=None, family="llama", dtype="bfloat16",
                                   pp_size=2)) == "llama-bfloat16-tp2-pp2"


def test_inputs_hash_is_canonical_and_tracks_engine_inputs():
    base = tc.engine_hash_inputs(spec())
    assert tc.engine_inputs_hash(base) == tc.engine_inputs_hash(dict(reversed(list(base.items()))))
    assert len(tc.engine_inputs_hash(base)) == 64
    assert tc.engine_inputs_hash(base) != tc.engine_inputs_hash(tc.engine_hash_inputs(spec(dtype="bfloat16")))
    assert tc.engine_inputs_hash(base) != tc.engine_inputs_hash(
        tc.engine_hash_inputs(spec(extra_build_args=["--use_rmsnorm_plugin", "float16"])))
    # legacy build.py's --gpus_per_node is not written into the engine: same key
    assert tc.engine_hash_inputs(spec(gpus_per_node=2)) == base
    modern = dict(version="0.12.0", model_name=None)
    assert tc.engine_hash_inputs(spec(**modern))["gpus_per_node"] == 1
    assert tc.engine_hash_inputs(spec(gpus_per_node=2, **modern))["gpus_per_node"] == 2


def test_legacy_build_argv_matches_the_notes():
    argv = tc.legacy_build_argv(spec(quantization="wo_int8"), "/app/tensorrt_llm/examples/chatglm/build.py",
                                "/TRTDir/engines/x.tmp-1")
    assert argv == ["python3", "/app/tensorrt_llm/examples/chatglm/build.py",
                    "--model_name", "chatglm2_6b", "--model_dir", MODEL,
                    "--output_dir", "/TRTDir/engines/x.tmp-1", "--dtype", "float16",
                    "--tp_size", "2", "--pp_size", "1", "--world_size", "2", "--gpus_per_node", "1",
                    "--max_batch_size", "1", "--max_input_len", "1024", "--max_output_len", "1024",
                    "--use_weight_only", "--weight_only_precision", "int8"]


def test_modern_plan_per_version():
    s09 = spec(version="0.9.0", model_name=None, quantization="wo_int4")
    plan = tc.build_plan(s09, "/ex", "/e/out", "/e/ckpt")
    assert [p["name"] for p in plan] == ["convert_checkpoint.py", "trtllm-build"]
    assert plan[0]["argv"] == ["python3", "/ex/chatglm/convert_checkpoint.py", "--model_dir", MODEL,
                               "--output_dir", "/e/ckpt", "--dtype", "float16", "--tp_size", "2",
                               "--pp_size", "1", "--use_weight_only", "--weight_only_precision", "int4"]
    assert plan[1]["argv"] == ["trtllm-build", "--checkpoint_dir", "/e/ckpt", "--output_dir", "/e/out",
                               "--max_batch_size", "1", "--max_input_len", "1024",
                               "--max_output_len", "1024", "--use_custom_all_reduce", "disable"]
    a10 = tc.trtllm_build_argv(spec(version="0.10.0", model_name=None), "/c", "/o")
    assert "--use_custom_all_reduce" not in a10 and "--gpus_per_node" not in a10
    a12 = tc.trtllm_build_argv(spec(version="0.12.0", model_name=None, max_output_len=200), "/c", "/o")
    assert a12[-4:] == ["--max_seq_len", "1224", "--gpus_per_node", "1"]
    assert "--max_output_len" not in a12
    legacy = tc.build_plan(spec(), "/ex", "/e/out", "/e/ckpt")
    assert legacy[0]["cwd"] == "/e/out" and legacy[0]["argv"][1] == "/ex/chatglm/build.py"


def test_run_py_argv_and_version_rules():
    argv = tc.run_py_argv(V07, "/app/ex/run.py", "/TRTDir/engines/e", MODEL,
                          ["Hello tell me about huawei", "second"], 1000, temperature=0.7, top_k=5,
                          use_py_session=True)
    assert argv == ["python3", "/app/ex/run.py", "--engine_dir", "/TRTDir/engines/e",
                    "--tokenizer_dir", MODEL, "--max_output_len", "1000", "--num_beams", "1",
                    "--temperature", "0.7", "--top_k", "5", "--use_py_session",
                    "--input_text", "Hello tell me about huawei", "second"]
    with pytest.raises(tc.TrtllmConfigError, match="run_profiling: examples/run.py of tensorrt_llm 0.7.1 has no --run_profiling"):
        tc.run_py_argv(V07, "r", "e", "t", ["x"], 10, run_profiling=True)
    assert "--run_profiling" in tc.run_py_argv("0.8.0", "r", "e", "t", ["x"], 10, run_profiling=True)
    with pytest.raises(tc.TrtllmConfigError, match=r"input_texts\[1\] '--x' starts with '-'"):
        tc.run_py_argv(V07, "r", "e", "t", ["ok", "--x"], 10)
    with pytest.raises(tc.TrtllmConfigError, match="input_texts is empty"):
        tc.run_py_argv(V07, "r", "e", "t", [], 10)


@pytest.mark.parametrize("version,gpus,method,build_args,run_args", [
    ("0.7.1", 1, "patch_model_runner", [], ["--use_py_session"]),
    ("0.9.0", 1, "patch_model_runner", [], ["--use_py_session"]),
    ("0.10.0", 2, "patch_model_runner", [], ["--use_py_session"]),
    ("0.7.1", 8, "none", [], []),
    ("0.11.0", 1, "build_option", ["--gpus_per_node", "1"], []),
    ("0.12.0", 8, "build_option", ["--gpus_per_node", "8"], []),
])
def test_gpus_per_node_fix_per_version(version, gpus, method, build_args, run_args):
    fix = tc.gpus_per_node_fix(version, gpus)
    assert (fix["method"], fix["build_args"], fix["run_args"]) == (method, build_args, run_args)
    assert fix["gpus_per_node"] == gpus
    if method == "patch_model_runner":
        assert fix["patch"]["file"] == "tensorrt_llm/runtime/model_runner.py"
        assert fix["patch"]["line"] == "runtime_mapping.gpus_per_node = %d  # mtrt: gpus_per_node patch" % gpus


RUNNER_07 = """\
        runtime_mapping = tensorrt_llm.Mapping(world_size=world_size,
                                               rank=rank,
                                               tp_size=tp_size,
                                               pp_size=pp_size)
        torch.cuda.set_device(rank % runtime_mapping.gpus_per_node)

        engine_name = get_engine_name(model_config.model_name,
"""


def test_patch_apply_is_idempotent_reversible_and_reported():
    new, changed = tc.apply_patch(RUNNER_07, 1)
    assert changed is True
    lines = new.splitlines()
    assert lines[4] == "        runtime_mapping.gpus_per_node = 1  # mtrt: gpus_per_node patch"
    assert lines[5] == "        torch.cuda.set_device(rank % runtime_mapping.gpus_per_node)"
    assert tc.patch_state(new) == {"anchors": 1, "applied": True, "value": 1}
    assert tc.apply_patch(new, 1) == (new, False)
    other, changed = tc.apply_patch(new, 2)
    assert changed and tc.patch_state(other)["value"] == 2 and other.count("mtrt:") == 1
    assert tc.revert_patch(new) == (RUNNER_07, True)
    assert tc.revert_patch(RUNNER_07) == (RUNNER_07, False)
    assert tc.patch_state(RUNNER_07) == {"anchors": 1, "applied": False, "value": None}
    with pytest.raises(tc.TrtllmConfigError, match="has no line 'torch.cuda.set_device"):
        tc.apply_patch("import torch\n", 1)


def test_check_world_names_every_number_and_the_fix():
    problems = tc.check_world(2, 2, 3, [("node1", 2), ("node2", 1)], 1)
    assert problems == [
        "Engine needs 4 ranks (tp=2, pp=2); mpirun -np is 3. Launch with np = tp_size x pp_size = 4.",
        "Engine needs 4 ranks (tp=2, pp=2); hostfile gives 3 slots (node1:2, node2:1). Raise "
        "node_slots in the inventory or lower tp_size/pp_size."]


def test_check_world_device_ordinal_preflight():
    layout = [("node2", 1), ("node1", 1)]
    problems = tc.check_world(2, 1, 2, layout, 1)   # runtime default gpus_per_node 8
    assert len(problems) == 1
    assert problems[0].startswith("Rank 1 (node1) would ask for GPU 1 (rank 1 % gpus_per_node 8), "
                                  "but node1 has 1 GPU(s) visible")
    assert tc.check_world(2, 1, 2, layout, 1, gpus_per_node=1) == []
    over = tc.check_world(2, 1, 2, [("node1", 2)], {"node1": 1}, gpus_per_node=1)
    assert over[0].startswith("node1 gets 2 ranks (0, 1) but has 1 GPU(s) visible")
    assert tc.check_world(4, 1, 4, [("a", 2), ("b", 2)], 2, gpus_per_node=2) == []
    assert tc.rank_devices([("a", 2), ("b", 2)], 4, 2)[3] == {"host": "b", "device": 1}
