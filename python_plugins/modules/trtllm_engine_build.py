#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: trtllm_engine_build
short_description: Build a TensorRT-LLM engine once per set of inputs, atomically
description:
  - Takes the engine request (O(request), built once by the trtllm_engine role from the cluster_trtllm_*
    settings with C(mpi_trt_ansible.trtllm.engine_request)) and derives the engine directory from it
    (C(<model_name|family>-<dtype>[-wo_int8|-wo_int4]-tp<T>-pp<P>[-beam<B>]) under O(engine_root)).
  - Skips the build (C(changed=false), C(cache_hit=true)) when C(<engine_dir>/mtrt-build.json) records the
    same inputs hash and every rank's engine file is there. With O(find_only) it never builds, it only reports the engine.
  - Otherwise builds into C(<engine_dir>.tmp-<pid>) with the command lines of the request's version (0.7.1
    build.py; 0.9.0 and 1.2.x convert_checkpoint.py then trtllm-build) and moves it into place only when the
    build succeeded and the engine is complete. For 1.2.x the checkpoint's config.json C(mapping.gpus_per_node)
    is set to the GPUs per container between the two steps (trtllm-build keeps it in the engine).
  - Runs the tools directly (not under mpirun); put O(engine_root) on the directory every node mounts.
author:
  - mpi-trt-ansible contributors
version_added: "1.0.0"
options:
  request:
    description:
      - The engine identity - C(version), C(flow), C(family), C(model_name), C(model_dir), C(dtype), C(quantization),
        C(tp_size), C(pp_size), C(gpus_per_node), C(max_batch_size), C(max_input_len), C(max_output_len),
        C(max_beam_width), C(extra_convert_args), C(extra_build_args).
    type: dict
    required: true
  engine_root:
    description: Directory holding the engine directories, on the shared mount.
    type: path
    required: true
  examples_dir:
    description: TensorRT-LLM examples directory (C(trtllm_engine_facts) C(examples_dir)).
    type: path
    required: true
  python:
    description: Python interpreter that runs the build scripts.
    type: str
    default: python3
  trtllm_build:
    description: The C(trtllm-build) command.
    type: str
    default: trtllm-build
  build_gpus:
    description: GPUs of the building container (legacy build.py picks the build GPU as rank % this). Unset means the request's C(gpus_per_node).
    type: int
  env:
    description: Environment variables for the build tools (cluster_trtllm_env), on top of the node's own; not part of the inputs hash.
    type: dict
    default: {}
  find_only:
    description: Only report the engine for the request (C(cache_hit) says whether it is complete); never build.
    type: bool
    default: false
  keep_checkpoint:
    description: Keep the converted checkpoint (C(<engine_dir>.ckpt)) of the modern flow.
    type: bool
    default: false
  force:
    description: Rebuild even when the engine matches.
    type: bool
    default: false
  timeout_s:
    description: Bound on the whole build in seconds; on expiry the tool's process group is killed.
    type: int
    default: 3600
notes:
  - "Check mode: supported; reports C(would_build) and the commands without running them."
"""

EXAMPLES = r"""
- name: Build the engine on the shared directory
  trtllm_engine_build:
    request: "{{ trtllm_engine_request }}"
    engine_root: /TRTDir/engines
    examples_dir: "{{ trtllm_engine_facts.examples_dir }}"
  register: trtllm_engine_build
"""

RETURN = r"""
mtrt_kind:
  description: Always C(trtllm_engine_build).
  returned: always
  type: str
  sample: trtllm_engine_build
engine_dir:
  description: Engine directory derived from the request.
  returned: always
  type: str
  sample: /TRTDir/engines/chatglm2_6b-float16-wo_int8-tp2-pp1
engine_name:
  description: Basename of RV(engine_dir).
  returned: always
  type: str
  sample: chatglm2_6b-float16-wo_int8-tp2-pp1
request:
  description: The request as validated.
  returned: always
  type: dict
inputs:
  description: The inputs that define the engine (what the hash covers).
  returned: always
  type: dict
inputs_hash:
  description: sha256 of the canonical JSON of RV(inputs), recorded in C(mtrt-build.json).
  returned: always
  type: str
flow:
  description: V(legacy) or V(modern).
  returned: always
  type: str
  sample: legacy
cache_hit:
  description: True when a complete engine with the same inputs hash was already there.
  returned: always
  type: bool
built:
  description: True when this run built (and moved into place) a new engine.
  returned: always
  type: bool
would_build:
  description: Whether a build is (or in check mode would be) needed.
  returned: always
  type: bool
commands:
  description: Each step - C(name), C(argv), C(rc), C(duration_s), C(timed_out), C(stdout_tail), C(stderr_tail) (rc null when not run).
  returned: always
  type: list
  elements: dict
duration_s:
  description: Seconds spent building (0 on a cache hit).
  returned: always
  type: float
engine:
  description: Engine metadata parsed from config.json and the files (flow, tp, pp, world_size, gpus_per_node, max_beam_width, dtype, quantization, expected/missing files, complete); null before a build.
  returned: always
  type: dict
gpus_per_node_fix:
  description: How the request's version uses its C(gpus_per_node) (see trtllm_engine_facts).
  returned: always
  type: dict
removed_stale:
  description: Leftovers of interrupted builds of this engine (C(<engine_dir>.tmp-*), C(.old-*)) removed before building.
  returned: always
  type: list
  elements: str
explained:
  description: Known raw errors in a failed step's output (module_utils/mtrt_explain.py), each C(raw), C(cause) and C(fix); the failure message starts its explanation with the first of them.
  returned: always
  type: list
  elements: dict
"""

import glob
import json
import os
import shutil
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.mtrt_explain import explain, format_explained
from ansible.module_utils.mtrt_proc import run_bounded, tail
from ansible.module_utils.trtllm_command import (HASH_FILE, TrtllmConfigError, build_plan,
                                                 engine_dir_name, engine_hash_inputs,
                                                 engine_inputs_hash, gpus_per_node_fix,
                                                 validate_request)
from ansible.module_utils.trtllm_output import parse_engine_config


def read_engine(path):
    """Engine metadata of a directory, or None when it has no readable config.json."""
    try:
        with open(os.path.join(path, "config.json"), encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, ValueError):
        return None
    return parse_engine_config(config, os.listdir(path))


def read_record(path):
    try:
        with open(os.path.join(path, HASH_FILE), encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def set_checkpoint_mapping(ckpt_dir, keys):
    """Write ``keys`` into the checkpoint config.json's mapping (the project's own build artefact)."""
    path = os.path.join(ckpt_dir, "config.json")
    with open(path, encoding="utf-8") as handle:
        config = json.load(handle)
    config.setdefault("mapping", {}).update(keys)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(config, handle, indent=4)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            request=dict(type="dict", required=True),
            engine_root=dict(type="path", required=True),
            examples_dir=dict(type="path", required=True),
            python=dict(type="str", default="python3"),
            trtllm_build=dict(type="str", default="trtllm-build"),
            build_gpus=dict(type="int"),
            env=dict(type="dict", default={}),
            find_only=dict(type="bool", default=False),
            keep_checkpoint=dict(type="bool", default=False),
            force=dict(type="bool", default=False),
            timeout_s=dict(type="int", default=3600),
        ),
        supports_check_mode=True,
    )
    p = module.params
    result = dict(mtrt_kind="trtllm_engine_build", changed=False, engine_dir=None, engine_name=None,
                  request=None, inputs=None, inputs_hash=None, flow=None, cache_hit=False, built=False,
                  would_build=False, commands=[], duration_s=0.0, engine=None,
                  gpus_per_node_fix=None, removed_stale=[], explained=[])
    try:
        req = validate_request(dict(p["request"]))
        fix = gpus_per_node_fix(req["version"], req["gpus_per_node"])
    except (TrtllmConfigError, KeyError, TypeError, ValueError) as exc:
        module.fail_json(msg="engine request refused: %s" % exc, **result)
    name = engine_dir_name(req)
    engine_dir = os.path.join(p["engine_root"], name)
    inputs = engine_hash_inputs(req)
    digest = engine_inputs_hash(inputs)
    result.update(engine_dir=engine_dir, engine_name=name, request=req, inputs=inputs,
                  inputs_hash=digest, flow=req["flow"], gpus_per_node_fix=fix)

    if os.path.isdir(engine_dir) and not p["force"]:
        engine = read_engine(engine_dir)
        if engine and engine["complete"] and read_record(engine_dir).get("inputs_hash") == digest:
            result.update(cache_hit=True, engine=engine)
            module.exit_json(**result)
    if p["find_only"]:
        result["engine"] = read_engine(engine_dir) if os.path.isdir(engine_dir) else None
        module.exit_json(**result)
    if not os.path.isdir(req["model_dir"]):
        module.fail_json(msg="model_dir %s does not exist on %s; put the Hugging Face model there "
                             "(on the shared mount) or fix cluster_trtllm_model_dir"
                             % (req["model_dir"], os.uname()[1]), **result)

    tmp_dir = "%s.tmp-%d" % (engine_dir, os.getpid())
    ckpt_dir = "%s.ckpt" % engine_dir
    plan = build_plan(req, p["examples_dir"], tmp_dir, ckpt_dir, python=p["python"],
                      trtllm_build=p["trtllm_build"], build_gpus=p["build_gpus"])
    result["would_build"] = True
    result["commands"] = [dict(name=s["name"], argv=s["argv"], rc=None, duration_s=0.0,
                               timed_out=False, stdout_tail="", stderr_tail="") for s in plan]
    if module.check_mode:
        result["changed"] = True
        module.exit_json(**result)

    os.makedirs(p["engine_root"], exist_ok=True)
    # Leftovers of interrupted builds of this engine (one launcher builds it).
    for stale in sorted(glob.glob(glob.escape(engine_dir) + ".tmp-*")
                        + glob.glob(glob.escape(engine_dir) + ".old-*")):
        if os.path.isdir(stale):
            shutil.rmtree(stale, ignore_errors=True)
            result["removed_stale"].append(stale)
    for stale in (tmp_dir, ckpt_dir):
        shutil.rmtree(stale, ignore_errors=True)
    os.makedirs(tmp_dir)
    started = time.monotonic()

    def fail(msg):
        shutil.rmtree(tmp_dir, ignore_errors=True)
        if not p["keep_checkpoint"]:
            shutil.rmtree(ckpt_dir, ignore_errors=True)
        result["duration_s"] = round(time.monotonic() - started, 3)
        module.fail_json(msg=msg, **result)

    for step, record in zip(plan, result["commands"]):
        left = p["timeout_s"] - (time.monotonic() - started)
        try:
            run = run_bounded(step["argv"], max(left, 1), cwd=step["cwd"],
                              env={str(k): str(v) for k, v in (p["env"] or {}).items()})
        except OSError as exc:
            fail("%s could not start: %s (argv[0]=%s)" % (step["name"], exc, step["argv"][0]))
        record.update(rc=run["rc"], duration_s=run["duration_s"], timed_out=run["timed_out"],
                      stdout_tail=tail(run["stdout"]), stderr_tail=tail(run["stderr"]))
        if run["timed_out"] or run["rc"] != 0:
            result["explained"] = explain(run["stdout"] + "\n" + run["stderr"])
            known = (" " + format_explained(result["explained"])) if result["explained"] else ""
        if run["timed_out"]:
            fail("%s timed out after timeout_s=%d s (killed); raise cluster_trtllm_build_timeout_s or "
                 "check the build node.%s Last output: %s" % (step["name"], p["timeout_s"], known,
                                                              tail(run["stderr"] or run["stdout"], 5)))
        if run["rc"] != 0:
            fail("%s failed with rc=%s.%s Output tail: %s" % (step["name"], run["rc"], known,
                                                              tail(run["stderr"] or run["stdout"], 15)))
        if step["checkpoint_mapping"]:
            try:
                set_checkpoint_mapping(ckpt_dir, step["checkpoint_mapping"])
            except (OSError, ValueError) as exc:
                fail("the checkpoint %s has no readable config.json to record gpus_per_node in (%s)"
                     % (ckpt_dir, exc))

    engine = read_engine(tmp_dir)
    result["engine"] = engine
    if not engine or not engine["complete"]:
        fail("the build exited 0 but the engine in %s is incomplete: %s" % (
            tmp_dir, "; ".join(engine["problems"]) if engine else "no readable config.json"))
    with open(os.path.join(tmp_dir, HASH_FILE), "w", encoding="utf-8") as handle:
        json.dump({"inputs_hash": digest, "inputs": inputs,
                   "commands": [s["argv"] for s in plan],
                   "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
                  handle, indent=2, sort_keys=True)
    old_dir = "%s.old-%d" % (engine_dir, os.getpid())
    if os.path.isdir(engine_dir):
        os.rename(engine_dir, old_dir)
    os.rename(tmp_dir, engine_dir)
    shutil.rmtree(old_dir, ignore_errors=True)
    if not p["keep_checkpoint"]:
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    result.update(changed=True, built=True, duration_s=round(time.monotonic() - started, 3),
                  engine=read_engine(engine_dir))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
