# SPDX-License-Identifier: Apache-2.0
"""run.py output and engine config.json parsing on captured output forms."""

import json

import pytest
from ansible.module_utils.trtllm_output import parse_engine_config, parse_run_output
from conftest import FIXTURES

FIX = FIXTURES / "trtllm"


def _parse(name):
    return parse_run_output((FIX / name).read_text(encoding="utf-8"))


def _texts(prompt):
    return [o["text"] for o in prompt["outputs"]]


def test_single_prompt_v07_ignores_log_lines():
    out = _parse("run_single_0.7.txt")
    assert len(out["prompts"]) == 1
    prompt = out["prompts"][0]
    assert prompt["index"] == 0
    assert prompt["input_text"] == "Hello tell me about huawei"
    assert _texts(prompt) == [" Huawei is a Chinese multinational technology company "
                              "headquartered in Shenzhen."]
    assert prompt["outputs"][0]["beam"] == 0 and prompt["outputs"][0]["token_count"] is None
    assert prompt["output_token_count"] is None
    assert out["versions"] == [] and out["profiling"] == [] and out["latency_s"] is None
    assert out["warnings"] == []


def test_several_prompts_beams_and_profiling_of_every_rank():
    out = _parse("run_multi_beams_profiling_0.9.txt")
    assert [p["input_text"] for p in out["prompts"]] == ["What is MPI?", "Name a GPU."]
    assert _texts(out["prompts"][0]) == [" MPI is a message passing standard.",
                                         " MPI stands for Message Passing Interface."]
    assert [o["beam"] for o in out["prompts"][1]["outputs"]] == [0, 1]
    assert _texts(out["prompts"][1]) == [" The H100.", " An A100."]
    assert out["profiling"] == [
        {"batch_size": 2, "iterations": 10, "latency_s": 0.81234567},
        {"batch_size": 2, "iterations": 10, "latency_s": 0.8301234567890123}]
    assert out["latency_s"] == pytest.approx(0.8301234567890123)
    assert out["throughput_prompts_per_s"] == pytest.approx(2 / 0.8301234567890123, rel=1e-5)
    assert out["tokens_per_s"] is None
    assert out["versions"] == ["0.9.0"]
    assert out["warnings"] == []


def test_banner_without_newline_glued_to_the_first_record():
    out = _parse("run_banner_glued_0.8dev.txt")
    assert out["versions"] == ["0.8.0.dev2024012301"]
    assert out["prompts"][0]["input_text"] == "Born in north-east France, Soyer trained as a"
    assert _texts(out["prompts"][0]) == [" chef before moving to London in the early 1830s."]
    assert out["warnings"] == []


def test_multiline_text_with_quotes_runs_until_the_next_record():
    out = _parse("run_multiline_quotes.txt")
    assert out["prompts"][0]["input_text"] == 'Write "hello" in Python'
    assert _texts(out["prompts"][0]) == [' Here it is:\n\nprint("hello")\nOutput: hello']
    assert _texts(out["prompts"][1]) == [' He said "yes".']
    assert out["warnings"] == []


def test_streaming_repeats_keep_the_last_text():
    out = _parse("run_streaming.txt")
    assert len(out["prompts"]) == 1
    assert _texts(out["prompts"][0]) == [" one two three"]
    assert out["streaming_updates"] == 4


def test_recent_seq_records_and_banner_spelling():
    out = _parse("run_seq_recent.txt")
    assert out["versions"] == ["1.0.0"]
    outputs = out["prompts"][0]["outputs"]
    assert [(o["seq"], o["beam"], o["text"]) for o in outputs] == [
        (0, 0, " Hello there."), (1, 0, " Hi!")]


def test_malformed_lines_become_warnings():
    out = _parse("run_malformed.txt")
    assert out["prompts"][0]["input_text"] == "Hello"
    assert _texts(out["prompts"][0]) == [" cut off mid-senten"]
    assert len(out["warnings"]) == 2
    assert "line 2: malformed record 'Output [Text 0 Beam x]" in out["warnings"][0]
    assert out["warnings"][1].startswith("Output [Text 0 Beam 0]: text is not closed")


def test_outputs_without_input_are_reported():
    out = parse_run_output('Output [Text 3 Beam 0]: " orphan"\n')
    assert out["prompts"][0]["index"] == 3 and out["prompts"][0]["input_text"] is None
    assert out["warnings"] == ["Text 3: outputs without an 'Input [Text 3]' line"]


def test_empty_output():
    out = parse_run_output("")
    assert out["prompts"] == [] and out["warnings"] == []


def _config(name):
    return json.loads((FIX / name).read_text(encoding="utf-8"))


def test_legacy_config_expected_and_missing_engine_files():
    meta = parse_engine_config(_config("config_legacy_chatglm2_tp2.json"),
                               ["config.json", "chatglm2_6b_float16_tp2_rank0.engine"])
    assert meta["flow"] == "legacy" and meta["version"] is None
    assert (meta["name"], meta["dtype"], meta["quantization"]) == ("chatglm2_6b", "float16", "wo_int8")
    assert (meta["tp"], meta["pp"], meta["world_size"]) == (2, 1, 2)
    assert meta["gpus_per_node"] is None
    assert meta["expected_files"] == ["chatglm2_6b_float16_tp2_rank0.engine",
                                      "chatglm2_6b_float16_tp2_rank1.engine"]
    assert meta["missing_files"] == ["chatglm2_6b_float16_tp2_rank1.engine"]
    assert meta["complete"] is False
    assert meta["problems"] == ["rank engine files missing: chatglm2_6b_float16_tp2_rank1.engine"]


def test_modern_09_config_tp_pp_and_int4():
    files = ["config.json"] + ["rank%d.engine" % r for r in range(4)]
    meta = parse_engine_config(_config("config_modern_0.9_tp2pp2.json"), files)
    assert meta["flow"] == "modern" and meta["version"] == "0.9.0"
    assert meta["architecture"] == "LlamaForCausalLM" and meta["dtype"] == "bfloat16"
    assert meta["quantization"] == "wo_int4"
    assert (meta["tp"], meta["pp"], meta["world_size"], meta["gpus_per_node"]) == (2, 2, 4, None)
    assert meta["max_output_len"] == 256 and meta["max_seq_len"] is None
    assert meta["complete"] is True and meta["problems"] == []


def test_modern_recent_config_records_gpus_per_node():
    meta = parse_engine_config(_config("config_modern_0.12_gpn1.json"), ["rank0.engine", "rank1.engine"])
    assert meta["gpus_per_node"] == 1 and meta["quantization"] == "none"
    assert meta["max_seq_len"] == 2048 and meta["complete"] is True


def test_legacy_pp_engine_names_and_bad_configs():
    # The names the 0.7.1 runtime opens: tp<tensor_parallel>_pp<pp> (model_runner.get_engine_name with
    # builder_config.tensor_parallel). llama/qwen build.py write exactly these.
    config = {"builder_config": {"name": "llama", "precision": "bfloat16",
                                 "tensor_parallel": 2, "pipeline_parallel": 2, "quant_mode": 0}}
    meta = parse_engine_config(config, [])
    assert meta["expected_files"][3] == "llama_bfloat16_tp2_pp2_rank3.engine"
    assert meta["quantization"] == "none"
    assert parse_engine_config({"foo": 1})["problems"][0].startswith("config.json has neither")
    bad = {"version": "0.9.0", "pretrained_config": {"mapping": {"world_size": 3, "tp_size": 2}}}
    assert "world_size 3 != tp_size 2 x pp_size 1" in parse_engine_config(bad)["problems"][0]
