"""trtllm_facts / trtllm_build / trtllm_run against small fake tools in tmp dirs."""

import json
import os
import sys
import textwrap

import trtllm_build
import trtllm_facts
import trtllm_run
from conftest import FIXTURES

PY = sys.executable
RUNNER = "        torch.cuda.set_device(rank % runtime_mapping.gpus_per_node)\n"


def write(path, text, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    if mode:
        path.chmod(mode)
    return path


def fake_dist(root, version):
    site = root / "site"
    write(site / ("tensorrt_llm-%s.dist-info" % version) / "METADATA",
          "Metadata-Version: 2.1\nName: tensorrt_llm\nVersion: %s\n" % version)
    write(site / "tensorrt_llm" / "__init__.py", "raise SystemExit('must not be imported')\n")
    write(site / "tensorrt_llm" / "runtime" / "model_runner.py", RUNNER)
    return site


# ---------------------------------------------------------------- trtllm_facts

def test_facts_legacy_image(tmp_path, monkeypatch, run_module):
    monkeypatch.setenv("PYTHONPATH", str(fake_dist(tmp_path, "0.7.1")))
    examples = tmp_path / "examples"
    write(examples / "run.py", "")
    write(examples / "chatglm" / "build.py", "")
    res = run_module(trtllm_facts, dict(python=PY, examples_dir=str(examples), family="chatglm",
                                        gpus_per_node=1))
    assert res["failed"] is False and res["mtrt_kind"] == "trtllm_facts" and res["changed"] is False
    assert (res["present"], res["supported"], res["reason"]) == (True, True, "")
    assert res["version"] == "0.7.1" and res["flow"] == "legacy"
    assert res["package_dir"] == str(tmp_path / "site" / "tensorrt_llm")
    assert res["tools"]["run_py"] == str(examples / "run.py")
    assert res["tools"]["build_py"] == str(examples / "chatglm" / "build.py")
    assert res["tools"]["convert_checkpoint_py"] is None
    assert res["gpus_per_node_fix"]["method"] == "patch_model_runner"
    assert res["gpus_per_node_patch"] == {"anchors": 1, "applied": False, "value": None}


def test_facts_modern_image_without_trtllm_build(tmp_path, monkeypatch, run_module):
    monkeypatch.setenv("PYTHONPATH", str(fake_dist(tmp_path, "0.12.0")))
    examples = tmp_path / "examples"
    write(examples / "run.py", "")
    write(examples / "models" / "core" / "chatglm" / "convert_checkpoint.py", "")
    res = run_module(trtllm_facts, dict(python=PY, examples_dir=str(examples), family="chatglm",
                                        trtllm_build="mtrt-no-such-trtllm-build"))
    assert res["flow"] == "modern" and res["family_dir"] == str(examples / "models" / "core" / "chatglm")
    assert res["supported"] is False
    assert res["reason"] == "tensorrt_llm 0.12.0 needs mtrt-no-such-trtllm-build on PATH, which is missing"


def test_facts_absent_is_not_a_failure(tmp_path, monkeypatch, run_module):
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    res = run_module(trtllm_facts, dict(python=PY, examples_dir=str(tmp_path)))
    assert res["failed"] is False and res["present"] is False and res["supported"] is False
    assert res["reason"].startswith("no tensorrt_llm distribution is installed for ")
    assert "cluster_image_base" in res["reason"]
    res = run_module(trtllm_facts, dict(python=str(tmp_path / "nopython")))
    assert res["present"] is False and "cannot be run on this node" in res["reason"]


# ---------------------------------------------------------------- trtllm_build

FAKE_LEGACY_BUILD = """\
import argparse, json, os, sys
p = argparse.ArgumentParser()
for o in ("--model_name", "--model_dir", "--output_dir", "--dtype", "--tp_size", "--pp_size",
          "--world_size", "--gpus_per_node", "--max_batch_size", "--max_input_len", "--max_output_len",
          "--weight_only_precision"):
    p.add_argument(o)
p.add_argument("--use_weight_only", action="store_true")
a = p.parse_args()
if os.environ.get("FAKE_BUILD_FAIL"):
    sys.exit("AssertionError: fake build failure")
open("model.cache", "w").write("cache")
json.dump({"builder_config": {"name": a.model_name, "precision": a.dtype,
           "tensor_parallel": int(a.tp_size), "pipeline_parallel": int(a.pp_size),
           "quant_mode": 2 if a.use_weight_only else 0}},
          open(os.path.join(a.output_dir, "config.json"), "w"))
ranks = 1 if os.environ.get("FAKE_BUILD_PARTIAL") else int(a.world_size)
for r in range(ranks):
    open(os.path.join(a.output_dir, "%s_%s_tp%s_rank%d.engine" % (a.model_name, a.dtype, a.world_size, r)), "w").close()
print("built", " ".join(sys.argv[1:]))
"""


def legacy_args(tmp_path, **kw):
    examples = tmp_path / "examples"
    write(examples / "chatglm" / "build.py", FAKE_LEGACY_BUILD)
    model = tmp_path / "models" / "chatglm2-6b"
    model.mkdir(parents=True, exist_ok=True)
    args = dict(version="0.7.1", family="chatglm", model_name="chatglm2_6b", model_dir=str(model),
                tp_size=2, gpus_per_node=1, engine_root=str(tmp_path / "engines"),
                examples_dir=str(examples), python=PY, timeout_s=60)
    args.update(kw)
    return args


def test_build_legacy_then_cache_hit(tmp_path, run_module):
    args = legacy_args(tmp_path, quantization="wo_int8")
    res = run_module(trtllm_build, args)
    engine_dir = tmp_path / "engines" / "chatglm2_6b-float16-wo_int8-tp2-pp1"
    assert res["failed"] is False and res["changed"] is True and res["built"] is True
    assert res["mtrt_kind"] == "trtllm_build" and res["cache_hit"] is False
    assert res["engine_dir"] == str(engine_dir)
    assert res["engine"]["complete"] is True and res["engine"]["quantization"] == "wo_int8"
    assert res["engine"]["expected_files"] == ["chatglm2_6b_float16_tp2_rank0.engine",
                                               "chatglm2_6b_float16_tp2_rank1.engine"]
    assert res["commands"][0]["rc"] == 0 and res["commands"][0]["argv"][2:4] == ["--model_name", "chatglm2_6b"]
    assert "--use_weight_only" in res["commands"][0]["stdout_tail"]
    record = json.loads((engine_dir / "mtrt-build.json").read_text())
    assert record["inputs_hash"] == res["inputs_hash"] and record["inputs"]["quantization"] == "wo_int8"
    assert (engine_dir / "model.cache").is_file()
    assert sorted(p.name for p in (tmp_path / "engines").iterdir()) == [engine_dir.name]

    again = run_module(trtllm_build, args)
    assert again["changed"] is False and again["cache_hit"] is True and again["built"] is False
    assert again["inputs_hash"] == res["inputs_hash"] and again["commands"] == []

    other = run_module(trtllm_build, dict(args, max_output_len=512))   # same dir, new inputs: rebuild
    assert other["engine_dir"] == str(engine_dir) and other["built"] is True
    assert other["inputs_hash"] != res["inputs_hash"]


def test_build_after_interrupted_build_rebuilds_and_cleans(tmp_path, run_module):
    args = legacy_args(tmp_path)
    engine_dir = tmp_path / "engines" / "chatglm2_6b-float16-tp2-pp1"
    assert run_module(trtllm_build, args)["built"] is True
    # A killed build: a half-written temporary dir, a lost rank file.
    stale = tmp_path / "engines" / (engine_dir.name + ".tmp-4242")
    stale.mkdir()
    (stale / "config.json").write_text("{}")
    (engine_dir / "chatglm2_6b_float16_tp2_rank1.engine").unlink()
    res = run_module(trtllm_build, args)
    assert res["built"] is True and res["cache_hit"] is False and res["engine"]["complete"] is True
    assert res["removed_stale"] == [str(stale)] and not stale.exists()
    assert sorted(p.name for p in (tmp_path / "engines").iterdir()) == [engine_dir.name]
    assert run_module(trtllm_build, args)["removed_stale"] == []


def test_build_failure_leaves_nothing_in_place(tmp_path, monkeypatch, run_module):
    monkeypatch.setenv("FAKE_BUILD_FAIL", "1")
    res = run_module(trtllm_build, legacy_args(tmp_path))
    assert res["failed"] is True and res["built"] is False
    assert res["msg"].startswith("build.py failed with rc=1: AssertionError: fake build failure")
    assert res["commands"][0]["stderr_tail"] == "AssertionError: fake build failure"
    assert list((tmp_path / "engines").iterdir()) == []


def test_build_incomplete_engine_is_refused(tmp_path, monkeypatch, run_module):
    monkeypatch.setenv("FAKE_BUILD_PARTIAL", "1")
    res = run_module(trtllm_build, legacy_args(tmp_path))
    assert res["failed"] is True
    assert "is incomplete: rank engine files missing: chatglm2_6b_float16_tp2_rank1.engine" in res["msg"]
    assert list((tmp_path / "engines").iterdir()) == []


def test_build_timeout_kills_and_fails(tmp_path, run_module):
    args = legacy_args(tmp_path, timeout_s=1)
    write(tmp_path / "examples" / "chatglm" / "build.py", "import time\ntime.sleep(30)\n")
    res = run_module(trtllm_build, args)
    assert res["failed"] is True and res["commands"][0]["timed_out"] is True
    assert res["msg"].startswith("build.py timed out after timeout_s=1 s")


def test_build_check_mode_and_early_failures(tmp_path, run_module):
    res = run_module(trtllm_build, dict(legacy_args(tmp_path), _ansible_check_mode=True))
    assert res["would_build"] is True and res["changed"] is True and res["commands"][0]["rc"] is None
    assert not (tmp_path / "engines").exists()
    res = run_module(trtllm_build, legacy_args(tmp_path, model_dir=str(tmp_path / "missing")))
    assert res["failed"] is True and res["msg"].startswith("model_dir %s does not exist" % (tmp_path / "missing"))
    res = run_module(trtllm_build, legacy_args(tmp_path, model_name="chatglm2-6b"))
    assert res["failed"] is True and "needs --model_name, one of chatglm_6b" in res["msg"]


def test_build_modern_with_gpus_per_node(tmp_path, run_module):
    examples = tmp_path / "examples"
    write(examples / "chatglm" / "convert_checkpoint.py", """\
        import json, os, sys
        a = dict(zip(sys.argv[1::2], sys.argv[2::2]))
        os.makedirs(a["--output_dir"])
        json.dump({"tp": int(a["--tp_size"])}, open(os.path.join(a["--output_dir"], "config.json"), "w"))
        """)
    tool = write(tmp_path / "bin" / "trtllm-build", """\
        #!%s
        import json, os, sys
        a = dict(zip(sys.argv[1::2], sys.argv[2::2]))
        tp = json.load(open(os.path.join(a["--checkpoint_dir"], "config.json")))["tp"]
        json.dump({"version": "0.12.0", "pretrained_config": {"architecture": "ChatGLMForCausalLM",
                   "dtype": "float16", "mapping": {"world_size": tp, "tp_size": tp, "pp_size": 1,
                   "gpus_per_node": int(a["--gpus_per_node"])}}, "build_config": {}},
                  open(os.path.join(a["--output_dir"], "config.json"), "w"))
        for r in range(tp):
            open(os.path.join(a["--output_dir"], "rank%%d.engine" %% r), "w").close()
        """ % PY, mode=0o755)
    model = tmp_path / "model"
    model.mkdir()
    res = run_module(trtllm_build, dict(version="0.12.0", family="chatglm", model_dir=str(model),
                                        tp_size=2, gpus_per_node=1, engine_root=str(tmp_path / "eng"),
                                        examples_dir=str(examples), python=PY, trtllm_build=str(tool)))
    assert res["failed"] is False and res["flow"] == "modern"
    assert [c["name"] for c in res["commands"]] == ["convert_checkpoint.py", "trtllm-build"]
    assert res["commands"][1]["argv"][-4:] == ["--max_seq_len", "2048", "--gpus_per_node", "1"]
    assert res["engine"]["gpus_per_node"] == 1 and res["engine"]["complete"] is True
    assert res["inputs"]["gpus_per_node"] == 1
    assert sorted(p.name for p in (tmp_path / "eng").iterdir()) == ["chatglm-float16-tp2-pp1"]


# ---------------------------------------------------------------- trtllm_run

def run_setup(tmp_path, stdout_fixture=None, rc=0, stderr="", sleep=0, slots=(1, 1)):
    engine = tmp_path / "engine"
    engine.mkdir(parents=True)
    (engine / "config.json").write_text(
        (FIXTURES / "trtllm" / "config_legacy_chatglm2_tp2.json").read_text())
    for r in range(2):
        (engine / ("chatglm2_6b_float16_tp2_rank%d.engine" % r)).write_text("")
    hostfile = tmp_path / "hostfile"
    # rank 0 on node2, as in the notes' --host node2:1 --host node1:1
    hostfile.write_text("".join("%s slots=%d\n" % hs for hs in zip(("node2", "node1"), slots)))
    out = (FIXTURES / "trtllm" / stdout_fixture).read_text() if stdout_fixture else ""
    (tmp_path / "stdout.txt").write_text(out)
    mpirun = write(tmp_path / "mpirun", """\
        #!%s
        import os, sys, time
        open(os.path.join(%r, "argv.txt"), "w").write("\\n".join(sys.argv[1:]))
        time.sleep(%d)
        sys.stdout.write(open(os.path.join(%r, "stdout.txt")).read())
        sys.stderr.write(%r)
        sys.exit(%d)
        """ % (PY, str(tmp_path), sleep, str(tmp_path), stderr, rc), mode=0o755)
    return dict(version="0.7.1", run_py="/app/tensorrt_llm/examples/run.py", engine_dir=str(engine),
                tokenizer_dir="/TRTDir/Models/chatglm2-6b", input_texts=["Hello tell me about huawei"],
                max_output_len=100, gpus_per_node=1, hostfile=str(hostfile), mpirun=str(mpirun),
                env={"NCCL_DEBUG": "WARN"}, mca={"btl_tcp_if_include": "192.168.123.0/24"}, timeout_s=30)


def test_run_parses_results_and_forces_py_session(tmp_path, run_module):
    res = run_module(trtllm_run, run_setup(tmp_path, "run_single_0.7.txt"))
    assert res["failed"] is False and res["changed"] is False and res["mtrt_kind"] == "trtllm_run"
    assert res["rc"] == 0 and res["timed_out"] is False
    assert res["prompts"][0]["input_text"] == "Hello tell me about huawei"
    assert res["prompts"][0]["outputs"][0]["text"].startswith(" Huawei is a Chinese")
    assert res["use_py_session"] is True
    assert res["world"]["gpus_per_node"] == 1 and res["world"]["gpus_per_node_fix"] == "patch_model_runner"
    assert res["world"]["ranks"] == {"0": {"host": "node2", "device": 0}, "1": {"host": "node1", "device": 0}}
    argv = (tmp_path / "argv.txt").read_text().splitlines()
    assert argv[argv.index("-np") + 1] == "2"
    assert argv[argv.index("-x") + 1] == "NCCL_DEBUG"
    assert argv[argv.index("--mca") + 1: argv.index("--mca") + 3] == ["btl_tcp_if_include", "192.168.123.0/24"]
    assert "--use_py_session" in argv and argv[-2:] == ["--input_text", "Hello tell me about huawei"]


def test_run_failure_reports_stderr_tail_and_device_hint(tmp_path, run_module):
    err = "Traceback (most recent call last):\nRuntimeError: CUDA error: invalid device ordinal\n"
    res = run_module(trtllm_run, run_setup(tmp_path, rc=1, stderr=err))
    assert res["failed"] is True and res["rc"] == 1
    assert "run.py failed with rc=1. A rank asked for a GPU its container lacks" in res["msg"]
    assert res["msg"].endswith("RuntimeError: CUDA error: invalid device ordinal")
    assert res["stderr_tail"].endswith("invalid device ordinal")


def test_run_timeout(tmp_path, run_module):
    res = run_module(trtllm_run, dict(run_setup(tmp_path, sleep=20), timeout_s=1))
    assert res["failed"] is True and res["timed_out"] is True and res["rc"] is None
    assert res["msg"].startswith("run.py timed out after timeout_s=1 s")


def test_run_refuses_a_broken_world_before_launch(tmp_path, run_module):
    res = run_module(trtllm_run, run_setup(tmp_path, slots=(1,)))
    assert res["failed"] is True and res["rc"] is None
    assert "hostfile gives 1 slots (node2:1)" in res["msg"]
    assert not (tmp_path / "argv.txt").exists()
    res = run_module(trtllm_run, dict(run_setup(tmp_path / "b"), version="0.12.0"))
    # 0.12 reads gpus_per_node from the engine; this legacy engine has none -> 8
    assert res["failed"] is True and "Rank 1 (node1) would ask for GPU 1" in res["msg"]


def test_run_missing_results_and_check_mode(tmp_path, run_module):
    res = run_module(trtllm_run, run_setup(tmp_path, "run_streaming.txt"))
    assert res["failed"] is False and res["prompts"][0]["outputs"][0]["text"] == " one two three"
    res = run_module(trtllm_run, dict(run_setup(tmp_path / "b", "run_multi_beams_profiling_0.9.txt"),
                                      version="0.9.0", run_profiling=True))
    assert res["failed"] is True and "printed results for 2 of 1 prompts" in res["msg"]
    res = run_module(trtllm_run, dict(run_setup(tmp_path / "c"), _ansible_check_mode=True,
                                      run_profiling=True))
    assert res["failed"] is True and "has no --run_profiling" in res["msg"]
    res = run_module(trtllm_run, dict(run_setup(tmp_path / "d"), _ansible_check_mode=True))
    assert res["failed"] is False and res["rc"] is None and res["cmd"][-1] == "Hello tell me about huawei"
    assert not (tmp_path / "d" / "argv.txt").exists()
