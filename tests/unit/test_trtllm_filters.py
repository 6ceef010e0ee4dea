# SPDX-License-Identifier: Apache-2.0
"""The stage filters (python_plugins/filter/trtllm.py) pass the roles' data to the one set of rules."""

import importlib.util

from conftest import PLUGINS

_spec = importlib.util.spec_from_file_location("mtrt_filter_trtllm", PLUGINS / "filter" / "trtllm.py")
flt = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(flt)

MODEL = "/TRTDir/Models/m"


def test_filters_are_registered():
    assert set(flt.FilterModule().filters()) == {
        "trtllm_stage_decision", "trtllm_problems", "trtllm_format_problems", "trtllm_engine_request",
        "trtllm_node_gpus", "trtllm_run_summary"}


def test_problems_read_the_registered_stat_loop_of_every_node():
    stat = {"n1": {"results": [{"item": MODEL, "stat": {"exists": True, "isdir": True}}]},
            "n2": {"results": [{"item": MODEL, "stat": {"exists": False}}]}}
    settings = {"cluster_trtllm_model_dir": MODEL}
    problems = [p for p in flt.trtllm_problems(settings, [], None, {"n1": {"version": "0.7.1"}}, stat)
                if p["variable"] == "cluster_trtllm_model_dir" and "node n2" in p["message"]]
    assert len(problems) == 1 and problems[0]["value"] == MODEL
    text = flt.trtllm_format_problems(problems)
    assert text.startswith("(1) cluster_trtllm_model_dir /TRTDir/Models/m is not a directory on node n2. Fix: ")


def test_run_summary_is_one_line():
    result = {"world": {"np": 2, "gpus_per_node": 1, "gpus_per_node_fix": "checkpoint_mapping",
                        "ranks": {"0": {"host": "a", "device": 0}, "1": {"host": "b", "device": 0}}},
              "use_py_session": True, "duration_s": 1.5, "latency_s": 0.25,
              "prompts": [{"input_text": "Hello", "outputs": [{"text": " line one\nline two"}]}]}
    assert flt.trtllm_run_summary(result) == ("2 ranks on a, b (gpus_per_node=1, checkpoint_mapping, py session) "
                                              "in 1.5s | Hello -> line one line two | latency 0.25s")
