#!/usr/bin/python
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: triton_serve_repo
short_description: Write the Triton model repository of every server for the engine to serve
description:
  - Writes, for each server of the serving plan, the TensorRT-LLM ensemble layout - C(preprocessing),
    C(tensorrt_llm), C(postprocessing) and C(ensemble) - into the server's C(repo) directory (one
    repository per server, since their C(gpu_device_ids) differ). Every C(config.pbtxt) is generated
    (C(mtrt_serve_config), the tensors of tensorrtllm_backend v0.14.0 and the backend's own parameter
    names); the Python models' code (C(<model>/1/...)) is copied from O(model_sources).
  - Checks first, writing nothing on a failure, that the engine directory exists and its C(config.json)
    says the tp and pp the servers are placed for, and that the model code exists.
  - Idempotent - a file is written only when its content differs, stale files in the four model
    directories are removed; C(changed) only then. Each repository's fingerprint (C(hashes)) is what
    C(triton_serve_instance) compares to decide on a restart. Runs on the launcher (the repositories
    live on the shared mount).
author:
  - mpi-trt-ansible contributors
version_added: "1.0.0"
options:
  servers:
    description: The servers of the serving plan (C(name), C(repo), C(mode), C(gpu_device_ids), C(gpu_sets), C(participant_ids), C(instance_count)).
    type: list
    elements: dict
    required: true
  engine_dir:
    description: The engine directory as the nodes see it (C(gpt_model_path)).
    type: str
    required: true
  tokenizer_dir:
    description: The tokenizer directory (C(tokenizer_dir) of pre- and postprocessing).
    type: str
    required: true
  model_sources:
    description: Directory with C(<model>/1/) code of the Python models.
    type: path
    required: true
  backend:
    description: Backend of the engine model - V(tensorrtllm) (C++) or V(python) (its C(model.py) from O(model_sources)).
    type: str
    choices: [tensorrtllm, python]
    default: tensorrtllm
  batching_strategy:
    description: C(gpt_model_type).
    type: str
    choices: [inflight_fused_batching, inflight_batching, V1]
    default: inflight_fused_batching
  max_batch_size:
    description: Triton C(max_batch_size) of every model.
    type: int
    default: 1
  max_beam_width:
    description: C(max_beam_width).
    type: int
    default: 1
  decoupled:
    description: C(model_transaction_policy.decoupled) of the engine model (needed for streaming).
    type: bool
    default: false
  max_queue_delay_us:
    description: C(dynamic_batching.max_queue_delay_microseconds) of the engine model.
    type: int
    default: 0
  exclude_input_in_output:
    description: C(exclude_input_in_output) - answers carry only the generated text.
    type: bool
    default: true
  preprocessing_instances:
    description: Instances of the tokenizer model.
    type: int
    default: 1
  postprocessing_instances:
    description: Instances of the detokenizer model.
    type: int
    default: 1
  parameters:
    description: Extra parameters of the engine model (key -> value); they override generated ones.
    type: dict
    default: {}
  executor_worker_path:
    description: C(executor_worker_path) of an orchestrator (the worker binary the backend spawns).
    type: str
    default: /opt/tritonserver/backends/tensorrtllm/trtllmExecutorWorker
  tp_size:
    description: Tensor parallelism the engine must have.
    type: int
    required: true
  pp_size:
    description: Pipeline parallelism the engine must have.
    type: int
    required: true
notes:
  - "Check mode: supported; reports the hashes and what would change, writes nothing."
"""

EXAMPLES = r"""
- name: Write the model repositories
  triton_serve_repo:
    servers: "{{ triton_serve_plan.servers }}"
    engine_dir: /TRTDir/engines/chatglm2_6b-float16-tp2-pp1
    tokenizer_dir: /TRTDir/Models/chatglm2-6b
    model_sources: /TRTDir/tensorrtllm_backend/all_models/inflight_batcher_llm
    tp_size: 2
    pp_size: 1
  register: triton_serve_repos
"""

RETURN = r"""
mtrt_kind:
  description: Always C(triton_serve_repo).
  returned: always
  type: str
  sample: triton_serve_repo
repos:
  description: Per server - C(name), C(path), C(hash), C(changed), C(written), C(removed) (paths relative to the repository).
  returned: always
  type: list
  elements: dict
hashes:
  description: Server name -> fingerprint of its repository.
  returned: always
  type: dict
engine:
  description: C(dir), C(tp), C(pp) of the engine served.
  returned: always
  type: dict
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.mtrt_fileio import atomic_write
from ansible.module_utils.mtrt_serve_config import (DEFAULT_WORKER, MODELS, code_models, digest,
                                                    engine_parallelism, repository_files)

KIND = "triton_serve_repo"


def _code_files(sources, models):
    """``{repo-relative path: (bytes, mode)}`` of the Python models' code."""
    out = {}
    for model in models:
        base = os.path.join(sources, model, "1")
        for root, _dirs, files in os.walk(base):
            if "__pycache__" in root.split(os.sep):
                continue
            for name in sorted(files):
                if name.endswith(".pyc"):
                    continue
                path = os.path.join(root, name)
                with open(path, "rb") as handle:
                    data = handle.read()
                rel = os.path.join(model, "1", os.path.relpath(path, base))
                out[rel] = (data, os.stat(path).st_mode & 0o755 | 0o644)
    return out


def server_spec(params, server):
    spec = {k: params[k] for k in ("backend", "batching_strategy", "max_batch_size", "max_beam_width", "decoupled",
                                   "max_queue_delay_us", "exclude_input_in_output", "engine_dir", "tokenizer_dir",
                                   "preprocessing_instances", "postprocessing_instances", "parameters")}
    spec["instance_count"] = int(server.get("instance_count") or 1)
    if server.get("mode") == "orchestrator":
        spec["gpu_device_ids"] = server.get("gpu_sets")
        spec["participant_ids"] = server.get("participant_ids")
        spec["executor_worker_path"] = params["executor_worker_path"]
    else:
        spec["gpu_device_ids"] = server.get("gpu_device_ids")
    return spec


def main():
    module = AnsibleModule(
        argument_spec=dict(
            servers=dict(type="list", elements="dict", required=True),
            engine_dir=dict(type="str", required=True),
            tokenizer_dir=dict(type="str", required=True),
            model_sources=dict(type="path", required=True),
            backend=dict(type="str", default="tensorrtllm", choices=["tensorrtllm", "python"]),
            batching_strategy=dict(type="str", default="inflight_fused_batching",
                                   choices=["inflight_fused_batching", "inflight_batching", "V1"]),
            max_batch_size=dict(type="int", default=1),
            max_beam_width=dict(type="int", default=1),
            decoupled=dict(type="bool", default=False),
            max_queue_delay_us=dict(type="int", default=0),
            exclude_input_in_output=dict(type="bool", default=True),
            preprocessing_instances=dict(type="int", default=1),
            postprocessing_instances=dict(type="int", default=1),
            parameters=dict(type="dict", default={}),
            executor_worker_path=dict(type="str", default=DEFAULT_WORKER),
            tp_size=dict(type="int", required=True),
            pp_size=dict(type="int", required=True),
        ),
        supports_check_mode=True,
    )
    p = module.params
    result = dict(mtrt_kind=KIND, changed=False, repos=[], hashes={},
                  engine={"dir": p["engine_dir"], "tp": None, "pp": None})
    config = os.path.join(p["engine_dir"], "config.json")
    try:
        with open(config) as handle:
            parallelism = engine_parallelism(handle.read())
    except OSError as exc:
        module.fail_json(msg="the engine to serve is not there: %s (%s). Build it first (stage 80, build_engine), or "
                             "set cluster_serve_engine_dir to an engine directory the nodes see." % (config, exc.strerror),
                         **result)
    if parallelism is None:
        module.fail_json(msg="%s gives no tp/pp (neither pretrained_config.mapping nor builder_config): is %s an "
                             "engine directory?" % (config, p["engine_dir"]), **result)
    result["engine"].update(tp=parallelism[0], pp=parallelism[1])
    if parallelism != (p["tp_size"], p["pp_size"]):
        module.fail_json(msg="the engine %s is tp=%d pp=%d, but the servers are placed for cluster_trtllm_tp_size x "
                             "cluster_trtllm_pp_size = %d x %d ranks. Serve an engine built for that, or set both "
                             "sizes to the engine's." % (p["engine_dir"], parallelism[0], parallelism[1],
                                                         p["tp_size"], p["pp_size"]), **result)
    models = code_models(p["backend"])
    missing = [os.path.join(p["model_sources"], m, "1", "model.py") for m in models
               if not os.path.isfile(os.path.join(p["model_sources"], m, "1", "model.py"))]
    if missing:
        module.fail_json(msg="model code missing: %s. Put tensorrtllm_backend's all_models/inflight_batcher_llm of "
                             "the version the image runs there, or set cluster_serve_model_sources."
                             % ", ".join(missing), **result)
    code = _code_files(p["model_sources"], models)
    for server in p["servers"]:
        try:
            configs = repository_files(server_spec(p, server))
        except (ValueError, KeyError, TypeError) as exc:
            module.fail_json(msg="instance %s: cannot generate its configs: %s" % (server.get("name"), exc), **result)
        files = {path: (text.encode(), 0o644) for path, text in configs.items()}
        files.update(code)
        repo = server["repo"]
        written, removed = [], []
        for rel in sorted(files):
            data, mode = files[rel]
            path = os.path.join(repo, rel)
            try:
                with open(path, "rb") as handle:
                    same = handle.read() == data and (os.stat(path).st_mode & 0o777) == mode
            except OSError:
                same = False
            if not same:
                written.append(rel)
                if not module.check_mode:
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    atomic_write(path, data, mode)
        if not module.check_mode:
            os.makedirs(os.path.join(repo, "ensemble", "1"), exist_ok=True)
        for model in MODELS:
            base = os.path.join(repo, model)
            for root, _dirs, names in os.walk(base):
                for name in names:
                    rel = os.path.relpath(os.path.join(root, name), repo)
                    if rel not in files and "__pycache__" not in rel.split(os.sep):
                        removed.append(rel)
                        if not module.check_mode:
                            os.unlink(os.path.join(root, name))
        fp = digest({rel: data for rel, (data, _m) in files.items()})
        record = os.path.join(repo, "mtrt-serve.json")
        record_text = json.dumps({"server": server["name"], "hash": fp, "engine_dir": p["engine_dir"]},
                                 indent=1, sort_keys=True) + "\n"
        try:
            with open(record) as handle:
                record_same = handle.read() == record_text
        except OSError:
            record_same = False
        if not record_same:
            written.append("mtrt-serve.json")
            if not module.check_mode:
                os.makedirs(repo, exist_ok=True)
                atomic_write(record, record_text.encode(), 0o644)
        changed = bool(written or removed)
        result["repos"].append({"name": server["name"], "path": repo, "hash": fp, "changed": changed,
                                "written": written, "removed": sorted(removed)})
        result["hashes"][server["name"]] = fp
        result["changed"] = result["changed"] or changed
    module.exit_json(**result)


if __name__ == "__main__":
    main()
