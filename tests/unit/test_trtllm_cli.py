# SPDX-License-Identifier: Apache-2.0
"""Every command line the builders produce is parsed by the recorded parser of its version.

The recorded option tables (tests/molecule/trtllm_double/cli_tables/<version>.json, written from
TensorRT-LLM's source at the commits they name) are rebuilt into argparse parsers here, and the test
double builds its parsers from the very same tables, so the double cannot accept a line the table
(and so the real tool) rejects, or the reverse.
"""

import argparse
import importlib.util
import itertools
import json
import pathlib

import pytest

from mpi_trt_ansible import trtllm

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOUBLE = ROOT / "tests" / "molecule" / "trtllm_double"
_spec = importlib.util.spec_from_file_location("mtrt_trtllm_cli_tables", DOUBLE / "cli_tables" / "__init__.py")
tables = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tables)

# The version each recorded table stands for, as the installed distribution reports it.
VERSIONS = {"0.7.1": "0.7.1", "0.9.0": "0.9.0", "1.2": "1.2.1"}
MODEL = "/TRTDir/Models/model"
GRID = list(itertools.product(
    ("chatglm", "llama", "gpt", "qwen"), ("float16", "bfloat16"), ("none", "wo_int8", "wo_int4"),
    ((1, 1), (2, 1), (1, 2), (2, 2)), (1, 4), (False, True)))


def settings(family, dtype, quant, tp, pp, beams, profiling, version):
    legacy = trtllm.SUPPORTED[trtllm.version_key(version)]["flow"] == "legacy"
    return {
        "cluster_trtllm_enabled": "true", "cluster_trtllm_gpus_per_node": 0,
        "cluster_trtllm_family": family,
        "cluster_trtllm_model_name": "chatglm2_6b" if legacy and family == "chatglm" else "",
        "cluster_trtllm_model_dir": MODEL, "cluster_trtllm_tokenizer_dir": MODEL,
        "cluster_trtllm_dtype": dtype, "cluster_trtllm_quantization": quant,
        "cluster_trtllm_tp_size": tp, "cluster_trtllm_pp_size": pp,
        "cluster_trtllm_max_batch_size": 1, "cluster_trtllm_max_input_len": 128,
        "cluster_trtllm_engine_max_output_len": 64, "cluster_trtllm_extra_convert_args": [],
        "cluster_trtllm_extra_build_args": [], "cluster_trtllm_engine_root": "/TRTDir/engines",
        "cluster_trtllm_prompts": ["Hello tell me about huawei", 'What is "MPI"?'],
        "cluster_trtllm_max_output_len": 16, "cluster_trtllm_num_beams": beams,
        "cluster_trtllm_temperature": None, "cluster_trtllm_top_k": None, "cluster_trtllm_top_p": None,
        "cluster_trtllm_run_profiling": profiling, "cluster_trtllm_run_extra_args": [],
        "cluster_trtllm_build_timeout_s": 60, "cluster_trtllm_run_timeout_s": 60,
    }


def nodes(ranks, gpus):
    """One slot per node, ``gpus`` GPUs each: the layout of the notes, widened to ``ranks``."""
    return [{"name": "node%d" % i, "slots": 1, "gpus": list(range(gpus))} for i in range(ranks)]


def tool_of(step, family):
    if step["name"] == "build.py":
        return "build.py:" + family
    if step["name"] == "convert_checkpoint.py":
        return "convert_checkpoint.py:" + family
    return step["name"]


def assert_parses(table_version, tool, argv):
    try:
        args, problems = tables.parse(table_version, tool, argv)
    except tables.ArgumentError as exc:
        pytest.fail("%s %s rejects %s: %s" % (tool, table_version, argv, exc))
    assert problems == [], "%s %s asserts after parsing %s: %s" % (tool, table_version, argv, problems)
    return args


@pytest.mark.parametrize("table_version", sorted(VERSIONS))
@pytest.mark.parametrize("family,dtype,quant,tp_pp,beams,profiling", GRID)
def test_grid_every_line_parses_or_is_refused_before_the_build(table_version, family, dtype, quant,
                                                               tp_pp, beams, profiling):
    version = VERSIONS[table_version]
    tp, pp = tp_pp
    s = settings(family, dtype, quant, tp, pp, beams, profiling, version)
    # Enough GPUs per container for the fixed-8 versions' rank % 8 (the layout is not the point here).
    layout = nodes(tp * pp, 8)
    problems = trtllm.request_problems(s, layout, version)
    served = trtllm.support(version)
    fam = served["families"].get(family)
    refusals = {p["variable"] for p in problems}
    if fam is None:
        assert refusals == {"cluster_trtllm_family"}, problems
        return
    if pp > fam.get("max_pp", pp):
        assert refusals == {"cluster_trtllm_pp_size"}, problems
        return
    if profiling and served["flow"] == "legacy":
        # 0.7.1's run.py has no --run_profiling: refused when the line is made.
        with pytest.raises(trtllm.TrtllmConfigError, match="run_profiling"):
            trtllm.run_py_argv(version, "/x/run.py", "/e", MODEL, ["a"], 16, run_profiling=True)
        return
    assert problems == [], problems
    req = trtllm.engine_request(s, version, 8)
    plan = trtllm.build_plan(req, "/app/tensorrt_llm/examples", "/TRTDir/engines/x.tmp-1",
                             "/TRTDir/engines/x.ckpt")
    for step in plan:
        argv = step["argv"][1:] if step["name"] == "trtllm-build" else step["argv"][2:]
        args = assert_parses(table_version, tool_of(step, family), argv)
        if hasattr(args, "max_beam_width"):
            assert args.max_beam_width == beams       # the engine is built for the beams run.py asks
    fix = trtllm.gpus_per_node_fix(version, 8)
    run = trtllm.run_py_argv(version, "/app/tensorrt_llm/examples/run.py", "/TRTDir/engines/x", MODEL,
                             s["cluster_trtllm_prompts"], 16, num_beams=beams, run_profiling=profiling,
                             use_py_session="--use_py_session" in fix["run_args"])
    args = assert_parses(table_version, "run.py", run[2:])
    assert args.input_text == s["cluster_trtllm_prompts"] and args.num_beams == beams


@pytest.mark.parametrize("table_version", sorted(VERSIONS))
def test_the_double_parses_with_the_same_tables(table_version):
    """The double's scripts call tables.parser(version, tool): the same parser, option for option."""
    for tool in tables.tools(table_version):
        built = tables.parser(table_version, tool)
        options = {a.dest: (tuple(a.option_strings), a.choices, a.default, a.nargs, a.required)
                   for a in built._actions if not isinstance(a, argparse._HelpAction)}
        table = tables.tool_table(table_version, tool)["options"]
        assert len(options) == len({o.get("dest", o["flags"][0].lstrip("-").replace("-", "_"))
                                    for o in table}), tool
    for script in ("tools/build.py", "tools/convert_checkpoint.py", "tensorrt_llm/commands/build.py",
                   "examples/run.py"):
        text = (DOUBLE / script).read_text()
        assert "import" in text and "parse(" in text and "argparse" not in text.split('"""', 2)[2], script


@pytest.mark.parametrize("table_version,tool,argv,reason", [
    # The list of what the old double accepted but the real CLIs reject.
    ("0.7.1", "build.py:chatglm", ["--model_name", "chatglm2_6b", "-i", "/m"], "unrecognized"),
    ("0.7.1", "build.py:chatglm", ["--model_name", "chatglm2_6b", "-o", "/o"], "unrecognized"),
    ("0.7.1", "build.py:chatglm", ["--model_name", "chatglm2_6b", "-l", "info"], "unrecognized"),
    ("0.7.1", "build.py:chatglm", ["--model_name", "chatglm2_6b", "--log_level", "loud"], "invalid choice"),
    ("0.9.0", "trtllm-build", ["--gemm_plugin", "fp17"], "invalid choice"),
    ("0.9.0", "trtllm-build", ["--gpt_attention_plugin", "yes"], "invalid choice"),
    ("1.2", "trtllm-build", ["--gpus_per_node", "1"], "unrecognized arguments: --gpus_per_node 1"),
    ("1.2", "trtllm-build", ["--use_custom_all_reduce", "disable"], "unrecognized"),
    ("1.2", "trtllm-build", ["--max_output_len", "64"], "unrecognized"),
    ("1.2", "trtllm-build", ["--log_level", "loud"], "invalid choice"),
    ("0.7.1", "run.py", ["--max_output_len", "1", "--run_profiling"], "unrecognized"),
    ("0.7.1", "run.py", ["--input_text", "a"], "required: --max_output_len"),
])
def test_tables_reject_what_the_real_cli_rejects(table_version, tool, argv, reason):
    with pytest.raises(tables.ArgumentError, match=reason):
        tables.parse(table_version, tool, argv)


@pytest.mark.parametrize("table_version,tool,argv", [
    # Real options users pass through the extra-args variables, which the old double refused.
    ("0.9.0", "convert_checkpoint.py:chatglm", ["--chatglm_version", "chatglm2"]),
    ("1.2", "convert_checkpoint.py:chatglm", ["--chatglm_version", "glm4", "--dtype", "auto"]),
    ("0.9.0", "trtllm-build", ["--remove_input_padding", "disable"]),
    ("1.2", "trtllm-build", ["--remove_input_padding", "enable", "--max_decoder_seq_len", "256"]),
    ("0.7.1", "run.py", ["--max_output_len", "8", "--streaming_interval", "2"]),
    ("1.2", "run.py", ["--max_output_len", "8", "--num_return_sequences", "2", "--streaming_interval", "2"]),
    ("0.7.1", "build.py:chatglm", ["--model_name", "glm_10b", "--remove_input_padding"]),
])
def test_tables_accept_real_options(table_version, tool, argv):
    tables.parse(table_version, tool, argv)


def test_post_parse_asserts_are_recorded():
    _, problems = tables.parse("0.7.1", "build.py:chatglm",
                               ["--model_name", "chatglm2_6b", "--tp_size", "2", "--world_size", "1"])
    assert problems == ["assert world_size == tp_size * pp_size failed"]
    _, problems = tables.parse("1.2", "convert_checkpoint.py:chatglm", ["--pp_size", "2"])
    assert problems == ["Pipeline parallelism is not supported."]


def test_every_table_names_where_it_was_read():
    for version in tables.versions():
        data = tables.table(version)
        assert data["read"]
        for tool in data["tools"]:
            assert tables.tool_table(version, tool)["source"], (version, tool)
    assert json.loads((DOUBLE / "cli_tables" / "0.7.1.json").read_text())["read"].count(
        "80bc07510ac4ddf13c0d76ad295cdb2b75614618") == 1
