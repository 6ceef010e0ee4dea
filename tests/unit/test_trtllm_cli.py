# SPDX-License-Identifier: Apache-2.0
"""Every command line the builders produce is parsed by the recorded parser of its version.

The recorded option tables (tests/molecule/trtllm_double/cli_tables/<version>.json, written from
TensorRT-LLM's source at the commits they name) are rebuilt into argparse parsers here, and the test
double builds its parsers from the very same tables (and from nothing else), so the double cannot
accept a line the table (and so the real tool) rejects, or the reverse.
"""

import argparse
import ast
import importlib.util
import itertools
import json
import os
import pathlib
import re
import subprocess
import sys
import types

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
COMMIT = re.compile(r"\b[0-9a-f]{40}\b")


def settings(family, dtype, quant, tp, pp, beams, profiling, version, **extra):
    legacy = trtllm.SUPPORTED[trtllm.version_key(version)]["flow"] == "legacy"
    out = {
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
    out.update({"cluster_trtllm_" + k: v for k, v in extra.items()})
    return out


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
    assert problems == [], "%s %s checks fail after parsing %s: %s" % (tool, table_version, argv, problems)
    return args


def expected_refusals(version, family, pp, profiling):
    """What upstream refuses for this grid cell, from the served facts: {variable}."""
    served = trtllm.support(version)
    fam = served["families"].get(family)
    out = set()
    if fam is None:
        out.add("cluster_trtllm_family")
    elif pp > fam.get("max_pp", pp):
        out.add("cluster_trtllm_pp_size")
    if profiling and not served["run_profiling"]:
        out.add("cluster_trtllm_run_profiling")
    return out


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
    expected = expected_refusals(version, family, pp, profiling)
    assert {p["variable"] for p in problems} == expected, problems
    if expected:
        for problem in problems:       # each refusal names variable, value, version and fix
            assert problem["value"] == s[problem["variable"]], problem
            assert "tensorrt_llm %s" % version in problem["message"] and problem["fix"], problem
        if "cluster_trtllm_run_profiling" in expected:
            # What stage 90 would have met: run.py of this version rejects the flag.
            with pytest.raises(tables.ArgumentError, match="unrecognized arguments: --run_profiling"):
                tables.parse(table_version, "run.py", ["--max_output_len", "1", "--run_profiling"])
        return
    req = trtllm.engine_request(s, version, 8)
    plan = trtllm.build_plan(req, "/app/tensorrt_llm/examples", "/TRTDir/engines/x.tmp-1",
                             "/TRTDir/engines/x.ckpt")
    assert [step["name"] for step in plan] == (
        ["build.py"] if req["flow"] == "legacy" else ["convert_checkpoint.py", "trtllm-build"])
    for step in plan:
        argv = step["argv"][1:] if step["name"] == "trtllm-build" else step["argv"][2:]
        args = assert_parses(table_version, tool_of(step, family), argv)
        if hasattr(args, "max_beam_width"):
            assert args.max_beam_width == beams       # the engine is built for the beams run.py asks
        if hasattr(args, "tp_size") and step["name"] != "trtllm-build":
            assert (args.tp_size, args.pp_size) == (tp, pp)
    fix = trtllm.gpus_per_node_fix(version, 8)
    run = trtllm.run_py_argv(version, "/app/tensorrt_llm/examples/run.py", "/TRTDir/engines/x", MODEL,
                             s["cluster_trtllm_prompts"], 16, num_beams=beams, run_profiling=profiling,
                             use_py_session="--use_py_session" in fix["run_args"])
    args = assert_parses(table_version, "run.py", run[2:])
    assert args.input_text == s["cluster_trtllm_prompts"] and args.num_beams == beams
    assert getattr(args, "run_profiling", False) is profiling


def test_grid_covers_every_served_family_and_refusal():
    """The grid above reaches every family each version builds and each kind of refusal."""
    built, refused = set(), set()
    for table_version, (family, _, _, (tp, pp), _, profiling) in itertools.product(sorted(VERSIONS), GRID):
        version = VERSIONS[table_version]
        refusals = expected_refusals(version, family, pp, profiling)
        (refused.update(refusals) if refusals else built.add((table_version, family)))
    assert built == {("0.7.1", "chatglm"), ("0.7.1", "llama"), ("0.7.1", "qwen")} | {
        (v, f) for v in ("0.9.0", "1.2") for f in ("chatglm", "llama", "gpt", "qwen")}
    assert refused == {"cluster_trtllm_family", "cluster_trtllm_pp_size", "cluster_trtllm_run_profiling"}


# ------------------------------------------------------------------ the double is the tables

def _type_name(action):
    if action.type is None:
        return None
    for name, fn in (("int", int), ("float", float), ("str", str), ("Path", pathlib.Path)):
        if action.type is fn:
            return name
    # The run.py yes/no type: a function of a string to a bool.
    if action.type("Yes") is True and action.type("t") is True and action.type("no") is False:
        return "yesno"
    return repr(action.type)


_ACTION_CLASS = {None: "_StoreAction", "store_true": "_StoreTrueAction", "store_false": "_StoreFalseAction",
                 "append": "_AppendAction", "BooleanOptionalAction": "BooleanOptionalAction"}


def expected_option(opt):
    """(dest, flags, type, choices, default, nargs, action, required, const) the table asks for,
    worked out from the JSON entry with argparse's documented rules (not with tables.parser)."""
    action = opt.get("action")
    flags = tuple(opt["flags"])
    if action == "BooleanOptionalAction":
        flags += tuple("--no-" + f[2:] for f in opt["flags"] if f.startswith("--"))
    longs = [f for f in opt["flags"] if f.startswith("--")]
    dest = opt.get("dest") or (longs[0] if longs else opt["flags"][0]).lstrip("-").replace("-", "_")
    flag_action = action in ("store_true", "store_false", "BooleanOptionalAction")
    if opt.get("suppress"):
        default = argparse.SUPPRESS
    elif "default" in opt:
        default = opt["default"]
    else:
        default = {"store_true": False, "store_false": True}.get(action)
    return (dest, flags, None if action in ("store_true", "store_false") else opt.get("type"),
            opt.get("choices"), default, 0 if flag_action else opt.get("nargs"), _ACTION_CLASS[action],
            opt.get("required", False), {"store_true": True, "store_false": False}.get(action, opt.get("const")))


def built_option(action):
    choices = list(action.choices) if action.choices is not None else None
    return (action.dest, tuple(action.option_strings), _type_name(action), choices, action.default,
            action.nargs, type(action).__name__, action.required, action.const)


def load_double_module():
    """tensorrt_llm/_double.py of the double, with the tables package under its installed name."""
    sys.modules["mtrt_trtllm_cli_tables"] = tables
    spec = importlib.util.spec_from_file_location("mtrt_double_under_test",
                                                  DOUBLE / "tensorrt_llm" / "_double.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("table_version", sorted(VERSIONS))
def test_the_double_parses_with_exactly_the_tables(table_version):
    """Option for option (flags, type, choices, default, nargs, action, ...): the parser the double
    builds is the table, and nothing in it is left over or missing."""
    double = load_double_module()
    for tool in tables.tools(table_version):
        built = double.parser(tool, table_version)
        got = sorted((built_option(a) for a in built._actions if not isinstance(a, argparse._HelpAction)),
                     key=lambda o: o[1])
        want = sorted((expected_option(o) for o in tables.tool_table(table_version, tool)["options"]),
                      key=lambda o: o[1])
        assert len(got) == len(want), (table_version, tool)
        for g, w in zip(got, want):
            assert g == w, (table_version, tool, g, w)


PARSER_MAKING = ("argparse", "ArgumentParser", "add_argument", "add_argument_group",
                 "add_mutually_exclusive_group", "set_defaults", "add_subparsers")


def test_nothing_in_the_double_but_the_tables_builds_a_parser():
    """No file of the double may import argparse or define options: a hand-written parser would
    drift from the tables. Every script parses through tensorrt_llm._double.parse(<tool>)."""
    scripts = {"tools/build.py": "'build.py:' + FAMILY", "tools/convert_checkpoint.py":
               "'convert_checkpoint.py:' + FAMILY", "tensorrt_llm/commands/build.py": "'trtllm-build'",
               "examples/run.py": "'run.py'"}
    checked = 0
    for path in sorted(DOUBLE.rglob("*.py")):
        rel = path.relative_to(DOUBLE).as_posix()
        if rel == "cli_tables/__init__.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [(node.module or "").split(".")[0]] + [a.name for a in node.names]
            elif isinstance(node, ast.Attribute):
                names = [node.attr]
            elif isinstance(node, ast.Name):
                names = [node.id]
            bad = [n for n in names if n in PARSER_MAKING]
            assert not bad, "%s:%s makes a parser of its own (%s)" % (rel, getattr(node, "lineno", "?"), bad)
        checked += 1
        if rel in scripts:
            calls = [ast.unparse(n.args[0]) for n in ast.walk(tree) if isinstance(n, ast.Call)
                     and isinstance(n.func, ast.Name) and n.func.id == "parse" and n.args]
            imports = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                       and n.module == "tensorrt_llm._double" and "parse" in [a.name for a in n.names]]
            assert calls == [scripts[rel]] and imports, (rel, calls)
    assert checked >= 8


def install(tmp_path, version):
    site, examples, bin_dir = tmp_path / "site", tmp_path / "examples", tmp_path / "bin"
    subprocess.run(["sh", str(DOUBLE / "install.sh"), version, str(site), str(examples), str(bin_dir),
                    sys.executable], check=True)
    return site, examples, bin_dir


@pytest.mark.parametrize("table_version", sorted(VERSIONS))
def test_the_installed_double_answers_with_the_table_parser(tmp_path, table_version):
    """install.sh puts one script per recorded tool where the product looks for it (family_dir), and
    each script's --help is the help of the table's parser: the same options, nothing added."""
    version = VERSIONS[table_version]
    site, examples, bin_dir = install(tmp_path, version)
    env = dict(os.environ, PYTHONPATH=str(site), COLUMNS="200")
    served = trtllm.support(version)
    scripts = {"run.py": [sys.executable, str(examples / "run.py")]}
    for family in served["families"]:
        where = pathlib.Path(trtllm.family_dir(version, family, str(examples)))
        if served["flow"] == "legacy":
            scripts["build.py:" + family] = [sys.executable, str(where / "build.py")]
        else:
            scripts["convert_checkpoint.py:" + family] = [sys.executable, str(where / "convert_checkpoint.py")]
    if served["flow"] == "modern":
        scripts["trtllm-build"] = [str(bin_dir / "trtllm-build")]
    # Every tool the project runs with this version is recorded (the legacy gpt build.py is recorded
    # though refused: its options are the table's).
    assert set(scripts) <= set(tables.tools(table_version))
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "200"
    try:
        for tool, argv in sorted(scripts.items()):
            out = subprocess.run(argv + ["--help"], env=env, capture_output=True, text=True, check=False)
            assert out.returncode == 0, (tool, out.stderr)
            shown = "".join(line for line in out.stdout.splitlines(True) if not line.startswith("[TensorRT-LLM]"))
            want = tables.parser(table_version, tool, raising=False).format_help()
            assert shown.split("\n", 1)[1] == want.split("\n", 1)[1], tool   # the prog name may differ
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old


# ------------------------------------------------------------------ what the tables accept and refuse

@pytest.mark.parametrize("table_version,tool,argv,reason", [
    # The list of what the old double accepted but the real CLIs reject.
    ("0.7.1", "build.py:chatglm", ["--model_name", "chatglm2_6b", "-i", "/m"], "unrecognized"),
    ("0.7.1", "build.py:chatglm", ["--model_name", "chatglm2_6b", "-o", "/o"], "unrecognized"),
    ("0.7.1", "build.py:chatglm", ["--model_name", "chatglm2_6b", "-l", "info"], "unrecognized"),
    ("0.7.1", "build.py:chatglm", ["--model_name", "chatglm2_6b", "--log_level", "loud"], "invalid choice"),
    ("0.9.0", "trtllm-build", ["--gemm_plugin", "fp17"], "invalid choice"),
    ("0.9.0", "trtllm-build", ["--gpt_attention_plugin", "yes"], "invalid choice"),
    ("0.9.0", "trtllm-build", ["--cluster_key", "B200"], "invalid choice"),
    ("1.2", "trtllm-build", ["--gpus_per_node", "1"], "unrecognized arguments: --gpus_per_node 1"),
    ("1.2", "trtllm-build", ["--use_custom_all_reduce", "disable"], "unrecognized"),
    ("1.2", "trtllm-build", ["--max_output_len", "64"], "unrecognized"),
    # 1.2 plugin choices (PluginConfig's Literal types, plugin.py at c20322ff)
    ("1.2", "trtllm-build", ["--gemm_plugin", "fp17"], "invalid choice"),
    ("1.2", "trtllm-build", ["--gpt_attention_plugin", "fp8"], "invalid choice"),
    ("1.2", "trtllm-build", ["--gemm_swiglu_plugin", "float16"], "invalid choice"),
    ("1.2", "trtllm-build", ["--context_fmha", "true"], "invalid choice"),
    ("1.2", "trtllm-build", ["--tokens_per_block", "many"], "invalid int value"),
    ("0.7.1", "run.py", ["--max_output_len", "1", "--run_profiling"], "unrecognized"),
    ("0.7.1", "run.py", ["--input_text", "a"], "required: --max_output_len"),
    # 0.9.0 run.py as read at 250d9c29 (not the 0.7.1 options plus --run_profiling)
    ("0.9.0", "run.py", ["--max_output_len", "1", "--num_return_sequences", "2"], "unrecognized"),
    ("0.9.0", "run.py", ["--max_output_len", "1", "--stop_words", "x"], "unrecognized"),
    ("0.9.0", "run.py", ["--max_output_len", "1", "--kv_cache_enable_block_reuse"], "unrecognized"),
    ("0.9.0", "trtllm-build", ["--max_seq_len", "64"], "unrecognized"),
    # 1.2 run.py at 640403b6 + utils.py at 1b17f9d1: --prompt_lookup_config is gone (now --ngram_config)
    ("1.2", "run.py", ["--max_output_len", "1", "--prompt_lookup_config", "[10,2,[0]]"], "unrecognized"),
    ("1.2", "run.py", ["--max_output_len", "1", "--kv_cache_enable_block_reuse", "yes"], "unrecognized"),
    ("1.2", "run.py", ["--max_output_len", "1", "--min_p", "low"], "invalid float value"),
    ("1.2", "run.py", ["--max_output_len", "1", "--language_task_uids", "en"], "invalid int value"),
    ("1.2", "convert_checkpoint.py:qwen", ["--tp_size", "2"], "required: --model_dir"),
    ("1.2", "convert_checkpoint.py:gpt", ["--gpt_variant", "gpt3"], "invalid choice"),
    ("0.9.0", "convert_checkpoint.py:llama", ["--weight_only_precision", "int4_awq"], "invalid choice"),
])
def test_tables_reject_what_the_real_cli_rejects(table_version, tool, argv, reason):
    with pytest.raises(tables.ArgumentError, match=reason):
        tables.parse(table_version, tool, argv)


@pytest.mark.parametrize("table_version,tool,argv", [
    # Real options users pass through the extra-args variables, which the old double refused.
    ("0.9.0", "convert_checkpoint.py:chatglm", ["--chatglm_version", "chatglm2"]),
    ("1.2", "convert_checkpoint.py:chatglm", ["--chatglm_version", "glm4", "--dtype", "auto"]),
    ("0.9.0", "trtllm-build", ["--remove_input_padding", "disable"]),
    ("0.9.0", "trtllm-build", ["--opt_num_tokens", "64", "--weight_sparsity", "--cluster_key", "H100-SXM"]),
    ("1.2", "trtllm-build", ["--remove_input_padding", "enable", "--max_decoder_seq_len", "256"]),
    ("1.2", "trtllm-build", ["--gemm_plugin", "nvfp4", "--gpt_attention_plugin", "auto", "--lora_plugin",
                             "disable", "--gemm_allreduce_plugin", "bfloat16", "--dora_plugin", "enable",
                             "--tokens_per_block", "64", "--low_latency_gemm_plugin", "fp8"]),
    ("0.7.1", "run.py", ["--max_output_len", "8", "--streaming_interval", "2"]),
    ("0.9.0", "run.py", ["--max_output_len", "8", "--sink_token_length", "4", "--presence_penalty", "0.5",
                         "--output_cum_log_probs_npy", "c.npy", "--lora_dir", "a", "b"]),
    ("1.2", "run.py", ["--max_output_len", "8", "--num_return_sequences", "2", "--streaming_interval", "2"]),
    # What the 1.2 run.py table lacked (audit of issue 14): each is a real option now.
    ("1.2", "run.py", ["--max_output_len", "8", "--min_p", "0.1", "--beam_width_array", "[2,4]",
                       "--ngram_config", "[10,2,[0]]", "--eagle_posterior_threshold", "0.1",
                       "--eagle_use_dynamic_tree", "--eagle_dynamic_tree_max_top_k", "3",
                       "--language_task_uids", "1", "2", "--backend", "pytorch", "--draft_engine_dir", "/d",
                       "--multimodal_input_file", "a.wav", "--input_token_extra_ids", "1", "2",
                       "--input_token_extra_ids_file", "x.csv", "--output_generation_logits",
                       "--fail_fast_on_attention_window_too_large"]),
    ("1.2", "convert_checkpoint.py:llama", ["--model_dir", "/m", "--cp_size", "1", "--use_fp8_rowwise"]),
    ("1.2", "convert_checkpoint.py:qwen", ["--model_dir", "/m", "--weight_only_precision", "int4_gptq"]),
    ("0.9.0", "convert_checkpoint.py:gpt", ["--gpt_variant", "starcoder2", "--nemo_ckpt_path", "/n"]),
    ("0.7.1", "build.py:chatglm", ["--model_name", "glm_10b", "--remove_input_padding"]),
])
def test_tables_accept_real_options(table_version, tool, argv):
    tables.parse(table_version, tool, argv)


def test_recorded_defaults_and_actions():
    # 1.2: --kv_cache_enable_block_reuse is a BooleanOptionalAction defaulting to True.
    args, _ = tables.parse("1.2", "run.py", ["--max_output_len", "1"])
    assert args.kv_cache_enable_block_reuse is True and args.min_p == 0.0 and args.backend is None
    args, _ = tables.parse("1.2", "run.py", ["--max_output_len", "1", "--no-kv_cache_enable_block_reuse"])
    assert args.kv_cache_enable_block_reuse is False
    # 0.9.0 run.py's own defaults (it had no add_common_args yet).
    args, _ = tables.parse("0.9.0", "run.py", ["--max_output_len", "1"])
    assert args.log_level == "error" and args.tokenizer_dir == "gpt2" and args.medusa_choices is None
    # 1.2 plugin defaults: 'auto' for the attention plugins, gemm_plugin None, others 'disable'.
    args, _ = tables.parse("1.2", "trtllm-build", [])
    assert (args.gpt_attention_plugin, args.gemm_plugin, args.lora_plugin, args.context_fmha,
            args.tokens_per_block) == ("auto", None, "disable", "enable", 32)
    # MoeConfig.ParallelismMode.TENSOR_PARALLEL is 2 in 0.7.1 and 0.9.0.
    assert tables.parse("0.7.1", "build.py:llama", [])[0].moe_tp_mode == 2
    assert tables.parse("0.9.0", "convert_checkpoint.py:llama", [])[0].moe_tp_mode == 2


def test_post_parse_checks_are_recorded():
    _, problems = tables.parse("0.7.1", "build.py:chatglm",
                               ["--model_name", "chatglm2_6b", "--tp_size", "2", "--world_size", "1"])
    assert problems == ["assert world_size == tp_size * pp_size failed"]
    for version in ("0.9.0", "1.2"):
        _, problems = tables.parse(version, "convert_checkpoint.py:chatglm", ["--pp_size", "2"])
        assert problems == ["Pipeline parallelism is not supported."]
        _, problems = tables.parse(version, "trtllm-build", ["--multiple_profiles", "enable", "--opt_num_tokens", "8"])
        assert problems == ["RuntimeError: multiple_profiles is enabled, while opt_num_tokens is set."]
    _, problems = tables.parse("1.2", "trtllm-build", ["--streamingllm", "enable"])
    assert problems and problems[0].startswith("AssertionError: StreamingLLM is no longer supported")
    _, problems = tables.parse("0.9.0", "run.py", ["--max_output_len", "1", "--medusa_choices", "[[0]]"])
    assert problems == ["AssertionError: Medusa is only supported by py_session"]
    assert tables.parse("0.9.0", "run.py", ["--max_output_len", "1", "--medusa_choices", "[[0]]",
                                            "--use_py_session"])[1] == []
    _, problems = tables.parse("1.2", "run.py", ["--max_output_len", "1", "--use_py_session", "--streaming",
                                                 "--num_beams", "2"])
    assert problems and problems[0].startswith("ValueError: Returning all the generated tokens")
    assert tables.parse("1.2", "run.py", ["--max_output_len", "1", "--streaming", "--num_beams", "2"])[1] == []


# ------------------------------------------------------------------ run.py refusals before the build

RUN_CONFLICTS = [
    # (version, run_extra_args, num_beams): what run.py of that version refuses in the session the
    # project runs it with; request_problems must refuse it first, naming the variable.
    ("1.2.1", ["--beam_width_array", "[2,4]"], 1), ("1.2.1", ["--draft_target_model_config", "[4,[0],[1],False]"], 1),
    ("1.2.1", ["--ngram_config=[10,2,[0]]"], 1), ("1.2.1", ["--eagle_choices", "[[0]]"], 1),
    ("1.2.1", ["--eagle_posterior_threshold", "0.0"], 1), ("1.2.1", ["--eagle_use_dynamic_tree"], 1),
    ("1.2.1", ["--return_all_generated_tokens"], 1), ("1.2.1", ["--streaming"], 4),
    ("0.9.0", ["--medusa_choices", "[[0]]"], 1),
]


@pytest.mark.parametrize("version,extra,beams", RUN_CONFLICTS)
def test_run_py_conflicts_are_refused_before_the_build(version, extra, beams):
    s = settings("llama", "float16", "none", 2, 1, beams, False, version, run_extra_args=extra)
    problems = trtllm.request_problems(s, nodes(2, 8), version)
    assert [p["variable"] for p in problems] == ["cluster_trtllm_run_extra_args"], problems
    assert problems[0]["value"] == extra and "tensorrt_llm %s" % version in problems[0]["message"]
    assert extra[0].split("=")[0] in problems[0]["message"] and problems[0]["fix"]
    # The table of that version's run.py agrees: the line stage 90 would run fails its checks.
    fix = trtllm.gpus_per_node_fix(version, 8)
    run = trtllm.run_py_argv(version, "run.py", "/e", MODEL, ["a"], 8, num_beams=beams,
                             use_py_session="--use_py_session" in fix["run_args"], extra_args=extra)
    assert tables.parse(trtllm.version_key(version), "run.py", run[2:])[1] != []


def test_run_py_options_that_fit_the_session_pass():
    ok = [("1.2.1", ["--streaming"], 1), ("1.2.1", ["--min_p", "0.1"], 4), ("0.9.0", ["--streaming"], 4),
          ("0.9.0", ["--medusa_choices", "[[0]]", "--use_py_session"], 1), ("0.7.1", ["--streaming"], 1),
          ("0.9.0", ["--use_py_session", "--streaming"], 4)]
    for version, extra, beams in ok:
        family = "llama"
        s = settings(family, "float16", "none", 2, 1, beams, False, version, run_extra_args=extra)
        assert trtllm.request_problems(s, nodes(2, 8), version) == [], (version, extra)
        fix = trtllm.gpus_per_node_fix(version, 8)
        run = trtllm.run_py_argv(version, "run.py", "/e", MODEL, ["a"], 8, num_beams=beams,
                                 use_py_session="--use_py_session" in fix["run_args"], extra_args=extra)
        assert_parses(trtllm.version_key(version), "run.py", run[2:])


def test_run_profiling_with_0_7_1_is_refused_before_the_build():
    s = settings("llama", "float16", "none", 2, 1, 1, True, "0.7.1")
    problems = trtllm.request_problems(s, nodes(2, 8), "0.7.1")
    assert [p["variable"] for p in problems] == ["cluster_trtllm_run_profiling"]
    assert problems[0]["value"] is True and "tensorrt_llm 0.7.1" in problems[0]["message"]
    assert problems[0]["fix"].startswith("Set cluster_trtllm_run_profiling: false")
    via_extra = trtllm.request_problems(settings("llama", "float16", "none", 2, 1, 1, False, "0.7.1",
                                                 run_extra_args=["--run_profiling"]), nodes(2, 8), "0.7.1")
    assert [p["variable"] for p in via_extra] == ["cluster_trtllm_run_profiling"]
    assert "--run_profiling in cluster_trtllm_run_extra_args" in via_extra[0]["message"]
    for version in ("0.9.0", "1.2.1"):
        assert trtllm.request_problems(settings("llama", "float16", "none", 2, 1, 1, True, version),
                                       nodes(2, 8), version) == []


# ------------------------------------------------------------------ where each table was read

def test_every_table_names_the_commits_it_was_read_at():
    for version in tables.versions():
        data = tables.table(version)
        assert COMMIT.search(data["read"]), version
        assert "index id" not in json.dumps(data), version       # commits, not search-index ids
        for tool in data["tools"]:
            entry = tables.tool_table(version, tool)
            assert COMMIT.search(entry["source"]), (version, tool)
            for opt in entry["options"]:
                for key in ("default_unrecorded", "choices_unrecorded", "type_unrecorded"):
                    if key in opt:       # what was not read says why
                        assert isinstance(opt[key], str) and len(opt[key]) > 20, (version, tool, opt)
    assert "80bc07510ac4ddf13c0d76ad295cdb2b75614618" in tables.table("0.7.1")["read"]
    assert "250d9c293d5edbc2a45c20775b3150b1eb68b364" in tables.table("0.9.0")["read"]
    assert "assumed" not in json.dumps(tables.table("0.9.0"))
    run12 = tables.tool_table("1.2", "run.py")["source"]
    assert "640403b606eb8a26dd46d80d6355944fcb26fea3" in run12 and "1b17f9d163ba06183def0512710a59fe3132a966" in run12
    build12 = tables.tool_table("1.2", "trtllm-build")["source"]
    assert "65f1d1536e18aea3380e6e270e00895a709333eb" in build12
    assert "c20322ffd3dc0740ca530c9fad989b22e64f6e06" in build12
    plugin = [o for o in tables.tool_table("1.2", "trtllm-build")["options"] if o["flags"][0].endswith("_plugin")]
    assert plugin and all("choices" in o for o in plugin)


def test_product_code_never_uses_the_double():
    """No module of the product imports the double or its tables or names their paths in code."""
    for path in list((ROOT / "mpi_trt_ansible").rglob("*.py")) + list((ROOT / "python_plugins").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            text = ""
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                text = " ".join([getattr(node, "module", "") or ""] + [a.name for a in node.names])
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and len(node.value) < 200:
                text = node.value       # a path in code, not a docstring's prose
            assert "trtllm_double" not in text and "cli_tables" not in text, (path, text)
    assert isinstance(tables, types.ModuleType)
