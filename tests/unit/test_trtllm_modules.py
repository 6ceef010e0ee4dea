# SPDX-License-Identifier: Apache-2.0
"""trtllm_engine_facts / trtllm_engine_build / trtllm_inference_run.

Facts and builds run against the test double installed into a tmp dir, whose tools parse every
line with the recorded option table of their version: a line the real tool would reject fails
here. The run module runs under a fake mpirun that replays captured run.py output.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import trtllm_engine_build
import trtllm_engine_facts
import trtllm_inference_run
from conftest import FIXTURES, ROOT

from mpi_trt_ansible import trtllm

PY = sys.executable
DOUBLE = ROOT / "tests" / "molecule" / "trtllm_double"


def write(path, text, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    if mode:
        path.chmod(mode)
    return path


def install_double(root, version):
    site, examples, bin_dir = root / "site", root / "examples", root / "bin"
    subprocess.run(["sh", str(DOUBLE / "install.sh"), version, str(site), str(examples), str(bin_dir), PY],
                   check=True)
    return site, examples, bin_dir


@pytest.fixture
def double(tmp_path, monkeypatch):
    def _make(version, visible_gpus=1):
        site, examples, bin_dir = install_double(tmp_path / ("d" + version), version)
        monkeypatch.setenv("PYTHONPATH", str(site))
        monkeypatch.setenv("MTRT_DOUBLE_VISIBLE_GPUS", str(visible_gpus))
        model = tmp_path / "models" / "chatglm2-6b"
        write(model / "config.json", json.dumps({"num_layers": 2, "torch_dtype": "float16"}))
        return examples, bin_dir, model
    return _make


def settings(model, **kw):
    s = {"cluster_trtllm_family": "chatglm", "cluster_trtllm_model_name": "chatglm2_6b",
         "cluster_trtllm_model_dir": str(model), "cluster_trtllm_dtype": "float16",
         "cluster_trtllm_quantization": "none", "cluster_trtllm_tp_size": 2, "cluster_trtllm_pp_size": 1,
         "cluster_trtllm_max_batch_size": 1, "cluster_trtllm_max_input_len": 128,
         "cluster_trtllm_engine_max_output_len": 64, "cluster_trtllm_num_beams": 1,
         "cluster_trtllm_extra_convert_args": [], "cluster_trtllm_extra_build_args": []}
    s.update({"cluster_trtllm_" + k: v for k, v in kw.items()})
    return s


# ---------------------------------------------------------------- trtllm_engine_facts

@pytest.mark.parametrize("version,flow,tool", [("0.7.1", "legacy", "build_py"),
                                               ("0.9.0", "modern", "convert_checkpoint_py"),
                                               ("1.2.1", "modern", "convert_checkpoint_py")])
def test_facts_of_each_served_version(double, run_module, version, flow, tool):
    examples, bin_dir, _ = double(version)
    res = run_module(trtllm_engine_facts, dict(python=PY, examples_dir=str(examples), family="chatglm",
                                               gpus_per_node=1, trtllm_build=str(bin_dir / "trtllm-build")))
    assert res["mtrt_kind"] == "trtllm_engine_facts" and res["changed"] is False
    assert res["present"] is True and res["supported"] is True, res["reason"]
    assert res["version"] == version and res["flow"] == flow and res["tools"][tool]
    assert res["gpus_per_node_fix"]["method"] == ("checkpoint_mapping" if version == "1.2.1" else "fixed")
    if version == "1.2.1":
        assert res["family_dir"].endswith("examples/models/core/glm-4-9b")


@pytest.mark.parametrize("version,where", [("0.9.0", "examples/{}"), ("1.2.1", "examples/models/core/{}")])
@pytest.mark.parametrize("family", ["llama", "gpt", "qwen"])
def test_facts_find_each_modern_family_where_the_version_keeps_it(double, run_module, version, where, family):
    examples, bin_dir, _ = double(version)
    res = run_module(trtllm_engine_facts, dict(python=PY, examples_dir=str(examples), family=family,
                                               gpus_per_node=1, trtllm_build=str(bin_dir / "trtllm-build")))
    assert res["supported"] is True, res["reason"]
    assert res["family_dir"].endswith(where.format(family)) and res["tools"]["convert_checkpoint_py"]


def test_facts_refuse_versions_and_families_not_served(tmp_path, monkeypatch, run_module):
    site = tmp_path / "site"
    write(site / "tensorrt_llm-0.12.0.dist-info" / "METADATA", "Metadata-Version: 2.1\nName: tensorrt_llm\nVersion: 0.12.0\n")
    write(site / "tensorrt_llm" / "__init__.py", "raise SystemExit('must not be imported')\n")
    write(tmp_path / "examples" / "run.py", "")
    monkeypatch.setenv("PYTHONPATH", str(site))
    res = run_module(trtllm_engine_facts, dict(python=PY, examples_dir=str(tmp_path / "examples"), family="chatglm"))
    assert res["present"] is True and res["supported"] is False and res["flow"] is None
    assert "tensorrt_llm 0.12.0 is not a version this project serves" in res["reason"]


def test_facts_other_family_and_no_trtllm(double, tmp_path, run_module):
    examples, _, _ = double("0.7.1")
    res = run_module(trtllm_engine_facts, dict(python=PY, examples_dir=str(examples), family="gpt"))
    assert res["supported"] is False and "builds chatglm or llama or qwen with it, not gpt" in res["reason"]
    res = run_module(trtllm_engine_facts, dict(python=str(tmp_path / "nopython")))
    assert res["present"] is False and "cannot be run on this node" in res["reason"]


# ---------------------------------------------------------------- trtllm_engine_build

def build_args(tmp_path, examples, bin_dir, req, **kw):
    args = dict(request=req, engine_root=str(tmp_path / "engines"), examples_dir=str(examples), python=PY,
                trtllm_build=str(bin_dir / "trtllm-build"), timeout_s=60)
    args.update(kw)
    return args


def test_build_legacy_0_7_1_then_cache_hit_then_rebuild(tmp_path, double, run_module):
    examples, bin_dir, model = double("0.7.1")
    req = trtllm.engine_request(settings(model, quantization="wo_int8"), "0.7.1", 1)
    res = run_module(trtllm_engine_build, build_args(tmp_path, examples, bin_dir, req))
    engine_dir = tmp_path / "engines" / "chatglm2_6b-float16-wo_int8-tp2-pp1"
    assert res["failed"] is False, res.get("msg")
    assert res["mtrt_kind"] == "trtllm_engine_build" and res["built"] is True and res["changed"] is True
    assert res["engine_dir"] == str(engine_dir) and res["engine"]["complete"] is True
    assert res["engine"]["quantization"] == "wo_int8" and res["engine"]["max_beam_width"] == 1
    assert sorted(p.name for p in engine_dir.iterdir()) == [
        "chatglm2_6b_float16_tp2_rank0.engine", "chatglm2_6b_float16_tp2_rank1.engine", "config.json",
        "model.cache", "mtrt-build.json"]
    again = run_module(trtllm_engine_build, build_args(tmp_path, examples, bin_dir, req))
    assert again["cache_hit"] is True and again["changed"] is False and again["built"] is False
    beams = trtllm.engine_request(settings(model, quantization="wo_int8", num_beams=4), "0.7.1", 1)
    wide = run_module(trtllm_engine_build, build_args(tmp_path, examples, bin_dir, beams))
    assert wide["built"] is True and wide["engine"]["max_beam_width"] == 4
    assert wide["engine_dir"].endswith("-beam4")
    (engine_dir / "chatglm2_6b_float16_tp2_rank1.engine").unlink()
    (tmp_path / "engines" / (engine_dir.name + ".tmp-4242")).mkdir()
    res = run_module(trtllm_engine_build, build_args(tmp_path, examples, bin_dir, req))
    assert res["built"] is True and res["removed_stale"] == [str(engine_dir) + ".tmp-4242"]


def test_build_0_9_0_on_two_gpus_per_node(tmp_path, double, run_module):
    examples, bin_dir, model = double("0.9.0", visible_gpus=2)
    req = trtllm.engine_request(settings(model, model_name=""), "0.9.0", 2)
    res = run_module(trtllm_engine_build, build_args(tmp_path, examples, bin_dir, req))
    assert res["failed"] is False, res.get("msg")
    assert [c["name"] for c in res["commands"]] == ["convert_checkpoint.py", "trtllm-build"]
    assert res["commands"][1]["argv"][-2:] == ["--use_custom_all_reduce", "disable"]
    assert res["engine"]["gpus_per_node"] is None and res["engine"]["complete"] is True
    assert res["gpus_per_node_fix"]["method"] == "fixed"


def test_build_1_2_writes_gpus_per_node_through_the_checkpoint(tmp_path, double, run_module):
    examples, bin_dir, model = double("1.2.1")
    req = trtllm.engine_request(settings(model, model_name=""), "1.2.1", 1)
    res = run_module(trtllm_engine_build, build_args(tmp_path, examples, bin_dir, req))
    assert res["failed"] is False, res.get("msg")
    assert "--gpus_per_node" not in res["commands"][1]["argv"]
    assert res["engine"]["gpus_per_node"] == 1 and res["inputs"]["gpus_per_node"] == 1
    config = json.loads((tmp_path / "engines" / "chatglm-float16-tp2-pp1" / "config.json").read_text())
    assert config["pretrained_config"]["mapping"]["gpus_per_node"] == 1


@pytest.mark.parametrize("version,family,tp,pp", [("0.9.0", "llama", 1, 2), ("0.9.0", "qwen", 2, 1),
                                                  ("1.2.1", "gpt", 1, 2), ("1.2.1", "llama", 2, 1)])
def test_build_other_families_through_their_converters(tmp_path, double, run_module, version, family, tp, pp):
    examples, bin_dir, model = double(version, visible_gpus=2)
    req = trtllm.engine_request(settings(model, family=family, model_name="", tp_size=tp, pp_size=pp), version, 2)
    res = run_module(trtllm_engine_build, build_args(tmp_path, examples, bin_dir, req))
    assert res["failed"] is False, res.get("msg")
    assert res["commands"][0]["argv"][1].endswith("/%s/convert_checkpoint.py" % family)
    config = json.loads((tmp_path / "engines" / ("%s-float16-tp%d-pp%d" % (family, tp, pp)) / "config.json").read_text())
    assert config["pretrained_config"]["architecture"] == trtllm.SUPPORTED[trtllm.version_key(version)][
        "families"][family]["architecture"]
    assert config["pretrained_config"]["mapping"]["pp_size"] == pp and res["engine"]["complete"] is True


def test_build_failures_name_the_step(tmp_path, double, run_module):
    examples, bin_dir, model = double("1.2.1")
    req = trtllm.engine_request(settings(model, model_name="", extra_build_args=["--gpus_per_node", "1"]),
                                "1.2.1", 1)
    res = run_module(trtllm_engine_build, build_args(tmp_path, examples, bin_dir, req))
    assert res["failed"] is True and res["built"] is False
    assert "trtllm-build failed with rc=2" in res["msg"] and "unrecognized arguments: --gpus_per_node 1" in res["msg"]
    assert not list((tmp_path / "engines").glob("*.tmp-*"))
    bad = dict(req, pp_size=2)
    res = run_module(trtllm_engine_build, build_args(tmp_path, examples, bin_dir, bad))
    assert res["failed"] is True and res["msg"].startswith("engine request refused: pp_size 2 with tensorrt_llm 1.2.1")
    res = run_module(trtllm_engine_build, build_args(tmp_path, examples, bin_dir, dict(req, model_dir="/nope")))
    assert res["failed"] is True and "model_dir /nope does not exist" in res["msg"]


def test_a_build_failure_is_explained_with_its_raw_line(tmp_path, double, run_module, monkeypatch):
    examples, bin_dir, model = double("1.2.1")
    req = trtllm.engine_request(settings(model, model_name=""), "1.2.1", 1)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "no-site"))  # the interpreter cannot import tensorrt_llm
    res = run_module(trtllm_engine_build, build_args(tmp_path, examples, bin_dir, req))
    assert res["failed"] is True and res["built"] is False
    [known] = res["explained"]
    assert known["raw"] == "ModuleNotFoundError: No module named 'tensorrt_llm'"
    assert known["cause"].startswith("the Python interpreter the ranks run (cluster_mpi_python) cannot import "
                                     "tensorrt_llm")
    assert "failed with rc=1. Cause: the Python interpreter" in res["msg"]


def test_build_check_mode_and_find_only(tmp_path, double, run_module):
    examples, bin_dir, model = double("0.7.1")
    req = trtllm.engine_request(settings(model), "0.7.1", 1)
    res = run_module(trtllm_engine_build, dict(build_args(tmp_path, examples, bin_dir, req), _ansible_check_mode=True))
    assert res["would_build"] is True and res["changed"] is True and not (tmp_path / "engines").exists()
    res = run_module(trtllm_engine_build, build_args(tmp_path, examples, bin_dir, req, find_only=True))
    assert res["cache_hit"] is False and res["built"] is False and res["changed"] is False
    run_module(trtllm_engine_build, build_args(tmp_path, examples, bin_dir, req))
    res = run_module(trtllm_engine_build, build_args(tmp_path, examples, bin_dir, req, find_only=True))
    assert res["cache_hit"] is True


# ---------------------------------------------------------------- trtllm_inference_run

def run_setup(tmp_path, stdout_fixture=None, rc=0, stderr="", sleep=0, slots=(1, 1), config=None):
    engine = tmp_path / "engine"
    engine.mkdir(parents=True)
    (engine / "config.json").write_text(
        config or (FIXTURES / "trtllm" / "config_legacy_chatglm2_tp2.json").read_text())
    for r in range(2):
        (engine / ("chatglm2_6b_float16_tp2_rank%d.engine" % r)).write_text("")
        (engine / ("rank%d.engine" % r)).write_text("")
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
                max_output_len=100, gpus_per_node=2, hostfile=str(hostfile), mpirun=str(mpirun),
                env={"NCCL_DEBUG": "WARN"}, mca={"btl_tcp_if_include": "192.168.123.0/24"}, timeout_s=30)


def test_run_parses_results(tmp_path, run_module):
    res = run_module(trtllm_inference_run, run_setup(tmp_path, "run_single_0.7.txt"))
    assert res["failed"] is False, res.get("msg")
    assert res["changed"] is False and res["mtrt_kind"] == "trtllm_inference_run"
    assert res["rc"] == 0 and res["timed_out"] is False
    assert res["prompts"][0]["input_text"] == "Hello tell me about huawei"
    assert res["prompts"][0]["outputs"][0]["text"].startswith(" Huawei is a Chinese")
    assert res["use_py_session"] is False
    assert res["world"]["gpus_per_node"] == 8 and res["world"]["gpus_per_node_fix"] == "fixed"
    assert res["world"]["ranks"] == {"0": {"host": "node2", "device": 0}, "1": {"host": "node1", "device": 1}}
    argv = (tmp_path / "argv.txt").read_text().splitlines()
    assert argv[argv.index("-np") + 1] == "2" and argv[argv.index("-x") + 1] == "NCCL_DEBUG"
    assert "--use_py_session" not in argv and argv[-2:] == ["--input_text", "Hello tell me about huawei"]
    assert res["command"] == [str(tmp_path / "mpirun")] + argv


def test_run_1_2_uses_the_engine_gpus_per_node_in_the_python_session(tmp_path, run_module):
    config = (FIXTURES / "trtllm" / "config_modern_0.12_gpn1.json").read_text()
    res = run_module(trtllm_inference_run, dict(run_setup(tmp_path, "run_single_0.7.txt", config=config),
                                                version="1.2.1", gpus_per_node=1))
    assert res["failed"] is False, res.get("msg")
    assert res["use_py_session"] is True and res["world"]["gpus_per_node"] == 1
    assert res["world"]["ranks"] == {"0": {"host": "node2", "device": 0}, "1": {"host": "node1", "device": 0}}
    assert "--use_py_session" in (tmp_path / "argv.txt").read_text().splitlines()


def test_run_refuses_before_launch(tmp_path, run_module):
    res = run_module(trtllm_inference_run, dict(run_setup(tmp_path), gpus_per_node=1))
    assert res["failed"] is True and res["rc"] is None
    assert "Rank 1 (node1) would ask for GPU 1 (rank 1 % gpus_per_node 8)" in res["msg"]
    assert not (tmp_path / "argv.txt").exists()
    res = run_module(trtllm_inference_run, run_setup(tmp_path / "b", slots=(1,)))
    assert res["failed"] is True and "np=2 ranks requested but the hosts give 1 slots (node2:1)" in res["msg"]
    res = run_module(trtllm_inference_run, dict(run_setup(tmp_path / "c"), num_beams=4))
    assert res["failed"] is True and "built for a beam width of 1" in res["msg"]
    res = run_module(trtllm_inference_run, dict(run_setup(tmp_path / "d"), version="0.12.0"))
    assert res["failed"] is True and "0.12.0 is not a version this project serves" in res["msg"]


def test_run_failure_timeout_missing_results_and_check_mode(tmp_path, run_module):
    err = "Traceback (most recent call last):\nRuntimeError: CUDA error: invalid device ordinal\n"
    res = run_module(trtllm_inference_run, run_setup(tmp_path, rc=1, stderr=err))
    assert res["failed"] is True and res["rc"] == 1
    assert "a rank asked for a GPU its container lacks (rank % gpus_per_node, runtime gpus_per_node=8)" in res["msg"]
    assert "mpirun exited with 1" in res["msg"]
    res = run_module(trtllm_inference_run, dict(run_setup(tmp_path / "t", sleep=20), timeout_s=1))
    assert res["failed"] is True and res["timed_out"] is True
    assert res["msg"].startswith("trtllm_inference_run timed out after 1s and every process it started was killed")
    res = run_module(trtllm_inference_run, dict(run_setup(tmp_path / "b", "run_multi_beams_profiling_0.9.txt"),
                                                version="0.9.0", run_profiling=True))
    assert res["failed"] is True and "printed results for 2 of 1 prompts" in res["msg"]
    res = run_module(trtllm_inference_run, dict(run_setup(tmp_path / "c"), _ansible_check_mode=True,
                                                run_profiling=True))
    assert res["failed"] is True and "has no --run_profiling" in res["msg"]
    res = run_module(trtllm_inference_run, dict(run_setup(tmp_path / "d"), _ansible_check_mode=True))
    assert res["failed"] is False and res["rc"] is None and res["command"][-1] == "Hello tell me about huawei"
    assert not (tmp_path / "d" / "argv.txt").exists()
    assert os.path.exists(tmp_path / "d" / "engine" / "config.json")
