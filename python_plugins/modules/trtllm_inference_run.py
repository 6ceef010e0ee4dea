#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""Run TensorRT-LLM's examples/run.py across the cluster and parse what rank 0 printed."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: trtllm_inference_run
short_description: Run TensorRT-LLM examples/run.py under mpirun and parse its results
description:
  - Reads the engine's config.json and checks the launch before anything starts (engine tp x pp, C(-np),
    hostfile slots, the device each rank will pick, C(rank % gpus_per_node) under the version's rule, and the
    engine's beam width against O(num_beams)); refuses with every problem named.
  - Launches one rank per engine rank (O(np) defaults to the engine's tp x pp) through the project's launcher
    (module_utils/mtrt_launch.py - hostfile, MCA parameters, C(-x) environment, C(--tag-output), a bound that
    kills the whole process tree).
  - Parses rank 0's output into prompts (input text, one output per beam), the profiling latency (every
    rank prints one) and the version banners. run.py prints no token counts, so those stay null.
  - Only observes; C(changed) is always false.
author:
  - mpi-trt-ansible contributors
version_added: "1.0.0"
options:
  version:
    description: Installed tensorrt_llm version (C(trtllm_engine_facts) C(version)); decides which run.py options exist and how ranks pick their GPU.
    type: str
    required: true
  run_py:
    description: Path of examples/run.py, the same on every node (C(trtllm_engine_facts) C(tools.run_py)).
    type: str
    required: true
  engine_dir:
    description: Engine directory on the shared mount (the engine stage 80 handed on, C(trtllm_engine_built.engine_dir)).
    type: str
    required: true
  tokenizer_dir:
    description: Tokenizer (Hugging Face model) directory; always passed, run.py would otherwise download C(gpt2).
    type: str
    required: true
  input_texts:
    description: Prompts, one C(Input [Text i]) each.
    type: list
    elements: str
    required: true
  max_output_len:
    description: Tokens to generate per prompt.
    type: int
    required: true
  num_beams:
    description: Beam width; at most the engine's C(max_beam_width).
    type: int
    default: 1
  temperature:
    description: Sampling temperature (run.py default when unset).
    type: float
  top_k:
    description: Top-k sampling.
    type: int
  top_p:
    description: Top-p sampling.
    type: float
  repetition_penalty:
    description: Repetition penalty.
    type: float
  length_penalty:
    description: Length penalty.
    type: float
  max_input_length:
    description: Truncate prompts to this many tokens.
    type: int
  run_profiling:
    description: Pass C(--run_profiling) (refused for 0.7.1, whose run.py has none).
    type: bool
    default: false
  use_py_session:
    description: Use the Python session. Forced on where the version takes gpus_per_node from the engine through it (1.2.x).
    type: bool
    default: false
  run_extra_args:
    description: Extra run.py arguments, placed before C(--input_text).
    type: list
    elements: str
    default: []
  gpus_per_node:
    description:
      - GPUs visible per node container (one value for all nodes). Used for the device check and to pick the
        version's gpus_per_node rule. Unset skips the GPU checks.
    type: int
  timeout_s:
    description: Bound on the whole mpirun, in seconds.
    type: int
    default: 600
extends_documentation_fragment:
  - mtrt_mpirun
  - mtrt_mpirun.launch
notes:
  - "Check mode: supported; runs the checks and returns the command without launching."
"""

EXAMPLES = r"""
- name: Run inference across the nodes
  trtllm_inference_run:
    version: "{{ trtllm_engine_facts.version }}"
    run_py: "{{ trtllm_engine_facts.tools.run_py }}"
    engine_dir: "{{ trtllm_engine_built.engine_dir }}"
    tokenizer_dir: /TRTDir/Models/chatglm2-6b
    input_texts: ["Hello tell me about huawei"]
    max_output_len: 200
    gpus_per_node: 1
    hostfile: /etc/mtrt/cluster/hostfile
    mca: {btl_tcp_if_include: 192.168.123.0/24}
    env: {NCCL_SOCKET_IFNAME: eth0}
  register: trtllm_inference_result
"""

RETURN = r"""
mtrt_kind:
  description: Always C(trtllm_inference_run).
  returned: always
  type: str
  sample: trtllm_inference_run
engine:
  description: Engine metadata (flow, tp, pp, world_size, gpus_per_node, max_beam_width, dtype, quantization, files).
  returned: always
  type: dict
world:
  description: C(np), C(gpus_per_node) the runtime uses, C(gpus_per_node_fix) (how it is set), C(ranks) (rank -> host, device), C(problems).
  returned: always
  type: dict
use_py_session:
  description: Whether run.py ran the Python session.
  returned: always
  type: bool
prompts:
  description: Per prompt - C(index), C(input_text), C(outputs) (list of C(seq), C(beam), C(text), C(token_count)), C(output_token_count) (null; run.py prints none).
  returned: always
  type: list
  elements: dict
  sample: [{index: 0, input_text: "Hello tell me about huawei", output_token_count: null,
            outputs: [{seq: null, beam: 0, text: " Huawei is a Chinese company.", token_count: null}]}]
profiling:
  description: Every C(--run_profiling) line - C(batch_size), C(iterations), C(latency_s) (one per rank).
  returned: always
  type: list
  elements: dict
latency_s:
  description: Average latency of one batch (slowest rank); null without profiling.
  returned: always
  type: float
throughput_prompts_per_s:
  description: Batch size / RV(latency_s); null without profiling.
  returned: always
  type: float
tokens_per_s:
  description: Null (run.py prints no token counts).
  returned: always
  type: float
versions:
  description: Versions from the ranks' banners.
  returned: always
  type: list
  elements: str
warnings_parse:
  description: Malformed or unclosed records found while parsing.
  returned: always
  type: list
  elements: str
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils import mtrt_launch
from ansible.module_utils.mtrt_rules import world_size
from ansible.module_utils.trtllm_command import (DEFAULT_GPUS_PER_NODE, TrtllmConfigError,
                                                 gpus_per_node_fix, launch_problems, rank_devices,
                                                 run_py_argv)
from ansible.module_utils.trtllm_output import parse_engine_config, parse_run_output

KIND = "trtllm_inference_run"


def main():
    module = AnsibleModule(
        argument_spec=mtrt_launch.argument_spec(
            timeout_s=600,
            version=dict(type="str", required=True),
            run_py=dict(type="str", required=True),
            engine_dir=dict(type="str", required=True),
            tokenizer_dir=dict(type="str", required=True),
            input_texts=dict(type="list", elements="str", required=True),
            max_output_len=dict(type="int", required=True),
            num_beams=dict(type="int", default=1),
            temperature=dict(type="float"),
            top_k=dict(type="int"),
            top_p=dict(type="float"),
            repetition_penalty=dict(type="float"),
            length_penalty=dict(type="float"),
            max_input_length=dict(type="int"),
            run_profiling=dict(type="bool", default=False),
            use_py_session=dict(type="bool", default=False),
            run_extra_args=dict(type="list", elements="str", default=[]),
            gpus_per_node=dict(type="int"),
        ),
        required_one_of=[("hostfile", "hosts")],
        supports_check_mode=True,
    )
    p = module.params
    own = dict(engine=None, world=None, use_py_session=p["use_py_session"], prompts=[], profiling=[],
               latency_s=None, throughput_prompts_per_s=None, tokens_per_s=None, versions=[],
               warnings_parse=[])

    def refuse(msg):
        module.fail_json(msg=msg, **dict(mtrt_launch.base_result(KIND), **own))

    try:
        with open(os.path.join(p["engine_dir"], "config.json"), encoding="utf-8") as handle:
            engine = parse_engine_config(json.load(handle), os.listdir(p["engine_dir"]))
    except (OSError, ValueError) as exc:
        refuse("engine_dir %s has no readable config.json (%s); run the trtllm_engine stage first "
               "(playbooks/80_trtllm_engine.yml)" % (p["engine_dir"], exc))
    own["engine"] = engine
    if not engine["complete"]:
        refuse("engine in %s is not usable: %s; rebuild it (trtllm_engine stage)"
               % (p["engine_dir"], "; ".join(engine["problems"])))
    # gpus_per_node the runtime will use: 8 for the versions that always use it, else the
    # engine's mapping (1.2.x, through the Python session).
    try:
        fix = gpus_per_node_fix(p["version"], p["gpus_per_node"])
        use_py = p["use_py_session"] or "--use_py_session" in fix["run_args"]
        command = run_py_argv(
            p["version"], p["run_py"], p["engine_dir"], p["tokenizer_dir"], p["input_texts"],
            p["max_output_len"], num_beams=p["num_beams"], temperature=p["temperature"],
            top_k=p["top_k"], top_p=p["top_p"], repetition_penalty=p["repetition_penalty"],
            length_penalty=p["length_penalty"], max_input_length=p["max_input_length"],
            run_profiling=p["run_profiling"], use_py_session=use_py, extra_args=p["run_extra_args"],
            python=p["python"])
    except TrtllmConfigError as exc:
        refuse(str(exc))
    runtime_gpn = (engine["gpus_per_node"] or DEFAULT_GPUS_PER_NODE
                   if fix["method"] == "checkpoint_mapping" else fix["gpus_per_node"])
    own["use_py_session"] = use_py
    p["np"] = p["np"] or world_size(engine["tp"], engine["pp"])

    try:
        planned = mtrt_launch.Launch(p, command)
    except mtrt_launch.LaunchError:
        planned = None   # run_module refuses it with the launcher's own message
    refusals = []
    if planned is not None:
        problems = launch_problems(p["version"], engine, planned.np, planned.hosts, p["gpus_per_node"],
                                   runtime_gpn)
        beam_width = engine.get("max_beam_width") or 1
        if p["num_beams"] > beam_width:
            problems.append({"variable": "cluster_trtllm_num_beams", "value": p["num_beams"],
                             "message": "run.py would ask for %d beams; the engine %s was built for a "
                                        "beam width of %d." % (p["num_beams"], p["engine_dir"], beam_width),
                             "fix": "Rebuild with the trtllm_engine stage (it builds for "
                                    "cluster_trtllm_num_beams), or lower cluster_trtllm_num_beams."})
        ranks = rank_devices(planned.hosts, planned.np, runtime_gpn) or {}
        own["world"] = dict(np=planned.np, tp=engine["tp"], pp=engine["pp"], gpus_per_node=runtime_gpn,
                            gpus_per_node_fix=fix["method"],
                            ranks={str(r): v for r, v in sorted(ranks.items())},
                            problems=["%s Fix: %s" % (x["message"], x["fix"]) for x in problems])
        refusals = ["refusing to launch run.py: %s" % m for m in own["world"]["problems"]]

    def judge(run, launch, result):
        parsed = parse_run_output(run["stdout"])
        result.update(prompts=parsed["prompts"], profiling=parsed["profiling"],
                      latency_s=parsed["latency_s"],
                      throughput_prompts_per_s=parsed["throughput_prompts_per_s"],
                      tokens_per_s=parsed["tokens_per_s"], versions=parsed["versions"],
                      warnings_parse=parsed["warnings"])
        problems = []
        if run["rc"] not in (0, None) and "invalid device ordinal" in run["stdout"] + run["stderr"]:
            problems.append("a rank asked for a GPU its container lacks (rank %% gpus_per_node, runtime "
                            "gpus_per_node=%d): %s" % (runtime_gpn, fix["reason"]))
        if run["rc"] == 0:
            expected = len(p["input_texts"])
            done = sum(1 for x in parsed["prompts"] if x["outputs"])
            if len(parsed["prompts"]) != expected or done != expected:
                problems.append("run.py exited 0 but printed results for %d of %d prompts (rank 0 prints "
                                "them; run_extra_args such as --output_csv suppress them)" % (done, expected))
        return problems

    mtrt_launch.run_module(module, KIND, command, judge, check=lambda launch: refusals,
                           bound_name="cluster_trtllm_run_timeout_s", defaults=own)


if __name__ == "__main__":
    main()
