#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: trtllm_engine_facts
short_description: Report what TensorRT-LLM a node holds, without importing it
description:
  - Reads the installed C(tensorrt_llm) version with C(importlib.metadata) in a subprocess of the node's
    Python. The library itself is never imported (importing it needs a GPU and prints banners).
  - Finds the examples directory, the family's build scripts and C(trtllm-build), and says whether the
    project serves the version (0.7.1 legacy build.py; 0.9.0 and 1.2.x convert_checkpoint.py +
    trtllm-build) and the family with it; any other version is unsupported, with the reason.
  - With O(gpus_per_node), also says how that version is made to use that many GPUs per container
    (C(gpus_per_node_fix)). Nothing of the library is ever changed.
  - Returns C(present=false) with a one-line C(reason) when the node has no TensorRT-LLM; never fails
    for that. Changes nothing.
author:
  - mpi-trt-ansible contributors
version_added: "1.0.0"
options:
  python:
    description: Python interpreter of the node that TensorRT-LLM is installed for.
    type: str
    default: python3
  examples_dir:
    description:
      - TensorRT-LLM's C(examples) directory. Unset, the first existing of
        C(/app/tensorrt_llm/examples), C(/opt/tensorrt_llm/examples), C(/workspace/TensorRT-LLM/examples).
    type: str
  family:
    description: Model family (e.g. V(chatglm)); its scripts are looked up where the version keeps them (e.g. C(examples/models/core/glm-4-9b) for chatglm in 1.2).
    type: str
  gpus_per_node:
    description: GPUs visible per node container; adds C(gpus_per_node_fix) to the result.
    type: int
  trtllm_build:
    description: Name or path of the C(trtllm-build) command.
    type: str
    default: trtllm-build
  timeout_s:
    description: Bound on the version probe, in seconds.
    type: int
    default: 60
notes:
  - "Check mode: supported (the module never changes anything)."
"""

EXAMPLES = r"""
- name: Detect TensorRT-LLM on the launcher
  trtllm_engine_facts:
    family: chatglm
    gpus_per_node: "{{ node_gpus | length }}"
  register: trtllm_engine_facts

- name: Skip the stages when the image has no TensorRT-LLM
  ansible.builtin.debug:
    msg: "{{ trtllm_engine_facts.reason }}"
  when: not trtllm_engine_facts.present
"""

RETURN = r"""
mtrt_kind:
  description: Always C(trtllm_engine_facts).
  returned: always
  type: str
  sample: trtllm_engine_facts
present:
  description: Whether a C(tensorrt_llm) distribution is installed for O(python).
  returned: always
  type: bool
  sample: true
supported:
  description: Whether the project serves this version and family and its tools are here (run.py plus the family's build tools).
  returned: always
  type: bool
  sample: true
reason:
  description: One line saying why C(present) or C(supported) is false and what to set; empty when fine.
  returned: always
  type: str
  sample: ""
version:
  description: Installed tensorrt_llm version.
  returned: always
  type: str
  sample: 0.7.1
flow:
  description: V(legacy) (0.7.1 build.py) or V(modern) (0.9.0, 1.2.x convert_checkpoint.py + trtllm-build); null for a version the project does not serve.
  returned: always
  type: str
  sample: legacy
python:
  description: Interpreter path as the node resolved it.
  returned: always
  type: str
  sample: /usr/bin/python3
python_version:
  description: Interpreter version.
  returned: always
  type: str
  sample: 3.10.12
package_dir:
  description: Directory of the tensorrt_llm package.
  returned: always
  type: str
  sample: /usr/local/lib/python3.10/dist-packages/tensorrt_llm
examples_dir:
  description: Examples directory found, null if none.
  returned: always
  type: str
  sample: /app/tensorrt_llm/examples
family_dir:
  description: Directory of O(family)'s scripts, null if not found or no family given.
  returned: always
  type: str
  sample: /app/tensorrt_llm/examples/chatglm
tools:
  description: Path of each tool (null when missing) - C(run_py), C(build_py), C(convert_checkpoint_py), C(trtllm_build).
  returned: always
  type: dict
  sample: {run_py: /app/tensorrt_llm/examples/run.py, build_py: /app/tensorrt_llm/examples/chatglm/build.py,
           convert_checkpoint_py: null, trtllm_build: null}
gpus_per_node_fix:
  description:
    - How this version uses O(gpus_per_node) GPUs per container (null without O(gpus_per_node) or for an unserved version).
    - C(method) is V(fixed) (the runtime always uses 8; the layout is checked instead) or V(checkpoint_mapping)
      (the checkpoint's mapping.gpus_per_node, kept by trtllm-build; run.py --use_py_session); also
      C(gpus_per_node), C(run_args), C(checkpoint_mapping), C(reason).
  returned: always
  type: dict
"""

import json
import os
import shutil

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.mtrt_proc import run_bounded, tail
from ansible.module_utils.trtllm_command import (VERSION_PROBE, family_dir, gpus_per_node_fix, support,
                                                 version_problem)

EXAMPLES_CANDIDATES = ("/app/tensorrt_llm/examples", "/opt/tensorrt_llm/examples",
                       "/workspace/TensorRT-LLM/examples")

# Runs in the node's Python: find the distribution and the package without importing it.
PROBE = VERSION_PROBE + r"""
import importlib.util, json, os, sys
out = {"python": sys.executable, "python_version": "%d.%d.%d" % sys.version_info[:3],
       "version": None, "package_dir": None}
out["version"] = _mtrt_trtllm_version()
spec = importlib.util.find_spec("tensorrt_llm")
if spec is not None and spec.origin:
    out["package_dir"] = os.path.dirname(spec.origin)
print(json.dumps(out))
"""


def _file(path):
    return path if path and os.path.isfile(path) else None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            python=dict(type="str", default="python3"),
            examples_dir=dict(type="str"),
            family=dict(type="str"),
            gpus_per_node=dict(type="int"),
            trtllm_build=dict(type="str", default="trtllm-build"),
            timeout_s=dict(type="int", default=60),
        ),
        supports_check_mode=True,
    )
    p = module.params
    result = dict(mtrt_kind="trtllm_engine_facts", changed=False, present=False, supported=False,
                  reason="", version=None, flow=None, python=p["python"], python_version=None,
                  package_dir=None, examples_dir=None, family_dir=None,
                  tools=dict(run_py=None, build_py=None, convert_checkpoint_py=None,
                             trtllm_build=None),
                  gpus_per_node_fix=None)
    try:
        probe = run_bounded([p["python"], "-c", PROBE], p["timeout_s"])
    except OSError as exc:
        result["reason"] = ("python %r cannot be run on this node (%s); set trtllm python to the "
                            "interpreter TensorRT-LLM is installed for" % (p["python"], exc))
        module.exit_json(**result)
    if probe["rc"] != 0:
        module.fail_json(msg="version probe with %s failed (rc=%s, timed_out=%s): %s"
                         % (p["python"], probe["rc"], probe["timed_out"],
                            tail(probe["stderr"], 10)), **result)
    info = json.loads(probe["stdout"].strip().splitlines()[-1])
    result.update(python=info["python"], python_version=info["python_version"],
                  version=info["version"], package_dir=info["package_dir"])
    if not info["version"]:
        result["reason"] = ("no tensorrt_llm distribution is installed for %s; use a node image "
                            "built on a TensorRT-LLM base (cluster_image_base, e.g. "
                            "tensorrt_llm/release) to run the TensorRT-LLM stages" % info["python"])
        module.exit_json(**result)
    result["present"] = True
    reasons = []
    served = version_problem(info["version"])
    if served:
        reasons.append(served)
    else:
        result["flow"] = support(info["version"])["flow"]
        if p["gpus_per_node"]:
            result["gpus_per_node_fix"] = gpus_per_node_fix(info["version"], p["gpus_per_node"])

    candidates = [p["examples_dir"]] if p["examples_dir"] else EXAMPLES_CANDIDATES
    examples = next((c for c in candidates if os.path.isdir(c)), None)
    result["examples_dir"] = examples
    tools = result["tools"]
    if examples is None:
        reasons.append("no TensorRT-LLM examples directory at %s; set the examples_dir of the "
                       "trtllm stages" % ", ".join(candidates))
    else:
        tools["run_py"] = _file(os.path.join(examples, "run.py"))
        if not tools["run_py"]:
            reasons.append("%s/run.py is missing; set examples_dir to the directory holding run.py"
                           % examples)
        if p["family"] and result["flow"]:
            if p["family"] in support(info["version"])["families"]:
                fam = family_dir(info["version"], p["family"], examples)
                result["family_dir"] = fam if os.path.isdir(fam) else None
                tools["build_py"] = _file(os.path.join(fam, "build.py"))
                tools["convert_checkpoint_py"] = _file(os.path.join(fam, "convert_checkpoint.py"))
            else:
                reasons.append("tensorrt_llm %s: the project builds %s with it, not %s (set "
                               "cluster_trtllm_family)" % (info["version"], " or ".join(
                                   sorted(support(info["version"])["families"])), p["family"]))
    tools["trtllm_build"] = shutil.which(p["trtllm_build"]) or shutil.which(
        p["trtllm_build"], path=os.path.dirname(result["python"] or "") or None)
    if (p["family"] and result["flow"] == "legacy" and examples and not tools["build_py"]
            and p["family"] in support(info["version"])["families"]):
        reasons.append("tensorrt_llm %s builds %s with %s/build.py, which is missing from the "
                       "image" % (info["version"], p["family"], family_dir(info["version"], p["family"],
                                                                           examples)))
    if p["family"] and result["flow"] == "modern" and examples and result["family_dir"] is not None:
        if not tools["convert_checkpoint_py"]:
            reasons.append("tensorrt_llm %s needs %s/convert_checkpoint.py, which is missing from "
                           "the image" % (info["version"], result["family_dir"]))
        if not tools["trtllm_build"]:
            reasons.append("tensorrt_llm %s needs %s on PATH, which is missing"
                           % (info["version"], p["trtllm_build"]))
    result["supported"] = not reasons
    result["reason"] = "; ".join(reasons)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
