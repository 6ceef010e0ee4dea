# SPDX-License-Identifier: Apache-2.0
"""TensorRT-LLM rules, written once: versions, command lines, the world contract, the engine identity.

This file is ``mpi_trt_ansible.trtllm`` on the controller (preflight, the stage filters) and, through
the link ``python_plugins/module_utils/trtllm_command.py``, ``ansible.module_utils.trtllm_command``
inside the modules Ansible ships to the nodes. Plain Python, standard library only.

Every fact below was read from TensorRT-LLM's own source; roles/trtllm_engine/README.md lists each
with the commit (or search-index id) it was read at. In short:

* The project serves the versions it recorded the command lines of (``SUPPORTED``): 0.7.1 (legacy
  ``examples/<family>/build.py``), 0.9.0 and 1.2.x (``convert_checkpoint.py`` then ``trtllm-build``).
  Any other version is refused before anything is built: its command lines were never compared with
  its source, so nothing says they would be accepted.
* Every rank picks CUDA device ``rank % gpus_per_node``. 0.7.1 and 0.9.0 always use 8 at run time
  (C++ session: ``WorldConfig.mpi(tp, pp)``; 0.7.1's Python session: ``Mapping(...)`` with its
  default) and nothing supported changes it, so a layout is served only where every rank's
  ``rank % 8`` is a GPU its container has. 1.2's trtllm-build keeps the checkpoint's
  ``mapping.gpus_per_node`` (the auto-parallel override went with NVIDIA/TensorRT-LLM PR #8329) and
  its Python session picks ``rank % pretrained_config.mapping.gpus_per_node``: the build writes the
  GPUs per container into the checkpoint's config.json and run.py runs ``--use_py_session``.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re

try:
    from ansible.module_utils.mtrt_rules import by_slot_placement, world_size
except ImportError:  # the controller imports the package directly
    from mpi_trt_ansible.rules import by_slot_placement, world_size

DEFAULT_GPUS_PER_NODE = 8
HASH_FILE = "mtrt-build.json"
DTYPES = ("float16", "bfloat16", "float32")
QUANTIZATIONS = ("none", "wo_int8", "wo_int4")
FAMILIES = ("chatglm", "llama", "gpt", "qwen")
LEGACY_MODEL_NAMES = ("chatglm_6b", "chatglm2_6b", "chatglm2_6b_32k", "chatglm3_6b",
                      "chatglm3_6b_base", "chatglm3_6b_32k", "glm_10b")

# The versions whose command lines the project recorded (tests/molecule/trtllm_double/cli_tables).
#   families: family -> {dir (under examples/), model_dir_flag, model_name (legacy build.py needs
#             --model_name), max_pp + max_pp_reason (what upstream refuses), architecture}
#   refused_families: family -> why upstream cannot build it with this version's tools
#   gpn:      how ranks are made to use the GPUs a container has (see gpus_per_node_fix)
#   run_profiling: whether examples/run.py has --run_profiling
#   run_needs_py_session: run.py options whose check asserts --use_py_session (when it is not run)
#   run_refused_with_py_session: run.py options whose check refuses --use_py_session (when it is)
#   run_streaming_beams_need_cpp: run.py turns on return_all_generated_tokens for --streaming with
#             beams, which its Python session refuses
SUPPORTED = {
    "0.7.1": {
        "flow": "legacy", "gpn": "fixed", "run_profiling": False,
        "families": {
            "chatglm": {"dir": "chatglm", "model_dir_flag": "--model_dir", "model_name": True,
                        "max_pp": 1,
                        "max_pp_reason": "examples/chatglm/build.py names the rank files "
                                         "tp<world_size>_pp<pp> while the runtime opens "
                                         "tp<tp_size>_pp<pp> (from builder_config.tensor_parallel), so "
                                         "an engine with pp_size > 1 cannot be loaded"},
            "llama": {"dir": "llama", "model_dir_flag": "--model_dir"},
            "qwen": {"dir": "qwen", "model_dir_flag": "--hf_model_dir"},
        },
        "refused_families": {
            "gpt": "examples/gpt/build.py of 0.7.1 reads weights converted by hf_gpt_convert.py "
                   "(its --model_dir is that output) and has no --tp_size/--pp_size, a flow this "
                   "project does not run",
        },
    },
    "0.9.0": {
        "flow": "modern", "gpn": "fixed", "custom_all_reduce_flag": True, "max_output_len": True,
        "run_profiling": True, "run_needs_py_session": {
            "--medusa_choices": "examples/run.py of 0.9.0 asserts that Medusa runs in the Python session "
                                "(--use_py_session), which this project does not pass for 0.9.0"},
        "families": {
            "chatglm": {"dir": "chatglm", "architecture": "ChatGLMForCausalLM", "max_pp": 1,
                        "max_pp_reason": "examples/chatglm/convert_checkpoint.py of 0.9.0 asserts "
                                         "pp_size == 1 (pipeline parallelism is not supported)"},
            "llama": {"dir": "llama", "architecture": "LlamaForCausalLM"},
            "gpt": {"dir": "gpt", "architecture": "GPTForCausalLM", "max_pp": 1,
                    "max_pp_reason": "tensorrt_llm/models/gpt/model.py of 0.9.0 builds no pipeline "
                                     "stages (GPTModel neither receives nor sends hidden states between "
                                     "pp ranks; 0.10.0 added them), so an engine with pp_size > 1 "
                                     "cannot run"},
            "qwen": {"dir": "qwen", "architecture": "QWenForCausalLM"},
        },
        "refused_families": {},
    },
    "1.2": {
        "flow": "modern", "gpn": "checkpoint_mapping", "max_seq_len": True, "run_profiling": True,
        "run_streaming_beams_need_cpp": True, "run_refused_with_py_session": {
            "--beam_width_array": "asserts that variable beam width search does not run in the "
                                  "Python session",
            "--draft_target_model_config": "asserts that speculative decoding does not run in the "
                                           "Python session",
            "--ngram_config": "asserts that speculative decoding does not run in the Python session",
            "--eagle_choices": "asserts that Eagle does not run in the Python session",
            "--eagle_posterior_threshold": "asserts that Eagle does not run in the Python session",
            "--eagle_use_dynamic_tree": "asserts that Eagle does not run in the Python session",
            "--return_all_generated_tokens": "refuses to return all generated tokens in the Python "
                                             "session",
        },
        "families": {
            "chatglm": {"dir": "models/core/glm-4-9b", "architecture": "ChatGLMForCausalLM",
                        "max_pp": 1,
                        "max_pp_reason": "examples/models/core/glm-4-9b/convert_checkpoint.py asserts "
                                         "pp_size == 1 (pipeline parallelism is not supported)"},
            "llama": {"dir": "models/core/llama", "architecture": "LlamaForCausalLM"},
            "gpt": {"dir": "models/core/gpt", "architecture": "GPTForCausalLM"},
            "qwen": {"dir": "models/core/qwen", "architecture": "QWenForCausalLM"},
        },
        "refused_families": {},
    },
}
SUPPORTED_TEXT = "0.7.1, 0.9.0 or 1.2.x"

_VERSION_RE = re.compile(r"^\s*v?(\d+)\.(\d+)(?:\.(\d+))?([0-9A-Za-z.+\-]*)\s*$")


class TrtllmConfigError(ValueError):
    """A request that the TensorRT-LLM version in the image cannot serve."""


def parse_version(text):
    """'0.8.0.dev2024012301' -> (0, 8, 0). Raises TrtllmConfigError."""
    match = _VERSION_RE.match(str(text or ""))
    if not match:
        raise TrtllmConfigError(
            "tensorrt_llm version %r is not a version number like 0.7.1 or 1.2.0; pass the version "
            "the facts module reports (trtllm_engine_facts: version)" % (text,))
    return tuple(int(part or 0) for part in match.groups()[:3])


# The installed TensorRT-LLM's version from its distribution's metadata (nothing of it imported: that takes
# seconds and wants a GPU), as Python source that the probe scripts run in the ranks' interpreter put before
# their own lines (Python 3.6 and later).
VERSION_PROBE = r"""
def _mtrt_trtllm_version():
    try:
        from importlib import metadata
    except ImportError:
        return None
    for name in ("tensorrt_llm", "tensorrt-llm"):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return None
"""


def version_key(version):
    """The SUPPORTED key serving ``version``, or None.

    0.7.1 and 0.9.0 are exact releases (a dev or rc build of them is another program); 1.2.x is
    every 1.2 release (post-#8329 trtllm-build).
    """
    match = _VERSION_RE.match(str(version or ""))
    if not match:
        return None
    ver, suffix = parse_version(version), match.group(4)
    plain = suffix in ("", ".post1", ".post2") or suffix.startswith("+")
    if ver == (0, 7, 1) and plain:
        return "0.7.1"
    if ver == (0, 9, 0) and plain:
        return "0.9.0"
    if ver[:2] == (1, 2) and plain:
        return "1.2"
    return None


def version_problem(version):
    """A sentence saying why ``version`` is refused, or None when the project serves it."""
    if version_key(version):
        return None
    return ("tensorrt_llm %s is not a version this project serves: only %s have their command lines "
            "recorded from TensorRT-LLM's source and checked (roles/trtllm_engine/README.md); any other "
            "release may reject them (as the newest trtllm-build rejects --gpus_per_node) or place "
            "ranks on GPUs that are not there. Use a node image with tensorrt_llm %s"
            % (version, SUPPORTED_TEXT, SUPPORTED_TEXT))


def support(version):
    """SUPPORTED entry of ``version``. Raises TrtllmConfigError when refused."""
    key = version_key(version)
    if not key:
        raise TrtllmConfigError(version_problem(version))
    return SUPPORTED[key]


def flow_for_version(version):
    return support(version)["flow"]


def family_dir(version, family, examples_dir):
    return posixpath.join(examples_dir, support(version)["families"][family]["dir"])


# --------------------------------------------------------------------------- settings

# cluster_trtllm_* variables: (type, rule) checked without a running node.
_INT_MIN1 = ("tp_size", "pp_size", "max_batch_size", "max_input_len", "engine_max_output_len",
             "max_output_len", "num_beams", "build_timeout_s", "run_timeout_s")


def _var(key):
    return "cluster_trtllm_" + key


def normalize_settings(settings):
    """A copy with integer settings given as text (``-e cluster_trtllm_tp_size=4``) made ints."""
    out = dict(settings or {})
    for key in _INT_MIN1 + ("gpus_per_node",):
        value = out.get(_var(key))
        if isinstance(value, str) and re.match(r"^\s*\d+\s*$", value):
            out[_var(key)] = int(value)
    return out


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _problem(variable, value, message, fix):
    return {"variable": variable, "value": value, "message": message, "fix": fix}


def _check_settings(s, out):
    for key in _INT_MIN1:
        value = s.get(_var(key))
        if not _is_int(value) or value < 1:
            out.append(_problem(_var(key), value, "%s is %r; it must be an integer >= 1."
                                % (_var(key), value), "Set %s to 1 or more." % _var(key)))
    gpn = s.get(_var("gpus_per_node"), 0)
    if not _is_int(gpn) or gpn < 0:
        out.append(_problem(_var("gpus_per_node"), gpn, "%s is %r; it must be an integer >= 0."
                            % (_var("gpus_per_node"), gpn),
                            "Set it to the GPUs each container sees, or 0 to count node_gpus."))
    family = s.get(_var("family"))
    if family not in FAMILIES:
        out.append(_problem(_var("family"), family, "%s %r is not a model family the project builds."
                            % (_var("family"), family),
                            "Set %s to one of %s." % (_var("family"), ", ".join(FAMILIES))))
    for key, choices in (("dtype", DTYPES), ("quantization", QUANTIZATIONS)):
        value = s.get(_var(key))
        if value not in choices:
            out.append(_problem(_var(key), value, "%s %r is not one of %s."
                                % (_var(key), value, ", ".join(choices)),
                                "Set %s to one of %s." % (_var(key), ", ".join(choices))))
    enabled = str(s.get(_var("enabled"), "auto")).lower()
    if enabled not in ("auto", "true", "false"):
        out.append(_problem(_var("enabled"), s.get(_var("enabled")), "%s is %r." % (
            _var("enabled"), s.get(_var("enabled"))), "Set it to auto, true or false."))
    for key in ("model_dir", "tokenizer_dir", "engine_root"):
        value = s.get(_var(key))
        if not isinstance(value, str) or not value.startswith("/"):
            out.append(_problem(_var(key), value, "%s %r is not an absolute path as the nodes see it."
                                % (_var(key), value),
                                "Set %s to a path under the shared mount, e.g. /TRTDir/..." % _var(key)))
    prompts = s.get(_var("prompts"))
    if not isinstance(prompts, list) or not prompts:
        out.append(_problem(_var("prompts"), prompts, "%s must be a non-empty list of prompts."
                            % _var("prompts"), "Give at least one prompt."))
    else:
        for i, text in enumerate(prompts):
            if not isinstance(text, str) or not text.strip() or text.startswith("-"):
                out.append(_problem(_var("prompts"), text, "%s[%d] %r is empty or starts with '-', "
                                    "which run.py's argparse reads as an option." % (_var("prompts"), i, text),
                                    "Rephrase the prompt."))
    for key in ("extra_convert_args", "extra_build_args", "run_extra_args"):
        value = s.get(_var(key), [])
        if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
            out.append(_problem(_var(key), value, "%s must be a list of strings." % _var(key),
                                "Write each argument as its own list item."))
    for key in ("temperature", "top_p"):
        value = s.get(_var(key))
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            out.append(_problem(_var(key), value, "%s %r is not a number." % (_var(key), value),
                                "Set a number, or null for run.py's default."))
    top_k = s.get(_var("top_k"))
    if top_k is not None and (not _is_int(top_k) or top_k < 0):
        out.append(_problem(_var("top_k"), top_k, "%s %r is not an integer >= 0." % (_var("top_k"), top_k),
                            "Set an integer, or null for run.py's default."))


def node_gpus(node, gpus_per_node=0):
    """GPUs a node's ranks can use: cluster_trtllm_gpus_per_node when set, else len(node_gpus)."""
    if _is_int(gpus_per_node) and gpus_per_node > 0:
        return gpus_per_node
    gpus = node.get("gpus")
    return len(gpus) if isinstance(gpus, list) else 0


def world(settings, nodes):
    """(tp, pp, ranks, [(name, slots)]) of a request on ``nodes``."""
    tp, pp = settings.get(_var("tp_size")), settings.get(_var("pp_size"))
    hosts = [(n.get("name"), n.get("slots") if _is_int(n.get("slots")) else 0) for n in nodes]
    return tp, pp, (world_size(tp, pp) if _is_int(tp) and _is_int(pp) else None), hosts


def rank_devices(hosts_slots, np, gpus_per_node):
    """{rank: {host, device}} for Open MPI's by-slot placement; None if np > slots."""
    placement = by_slot_placement(hosts_slots, np)
    if placement is None:
        return None
    return {r: {"host": h, "device": r % gpus_per_node} for r, h in placement.items()}


def _check_world(settings, nodes, out):
    tp, pp, need, hosts = world(settings, nodes)
    if need is None:
        return
    slots = sum(s for _, s in hosts)
    layout = ", ".join("%s:%d" % hs for hs in hosts) or "no nodes"
    var = "%s x %s" % (_var("tp_size"), _var("pp_size"))
    if need != slots:
        out.append(_problem(var, "%d x %d" % (tp, pp),
                            "The engine needs tp_size x pp_size = %d x %d = %d ranks, but the nodes "
                            "have %d slots (%s; one rank per slot)." % (tp, pp, need, slots, layout),
                            "Make %s equal %d, or set node_slots so they add up to %d."
                            % (var, slots, need)))
    gpn_setting = settings.get(_var("gpus_per_node"), 0)
    for node in nodes:
        name, slots_n = node.get("name"), node.get("slots")
        gpus = node_gpus(node, gpn_setting)
        if _is_int(slots_n) and slots_n > gpus:
            out.append(_problem("node_slots", slots_n,
                                "Node %s runs %d TensorRT-LLM rank(s) but sees %d GPU(s); one rank "
                                "needs one GPU." % (name, slots_n, gpus),
                                ("Set node_slots: %d on %s, or pin more GPUs (node_gpus)" % (gpus, name)
                                 if gpus else "Pin GPUs on %s with node_gpus (or set "
                                 "cluster_trtllm_gpus_per_node where the runtime gives them)" % name)))
    counts = sorted({node_gpus(n, gpn_setting) for n in nodes})
    if len(counts) > 1:
        out.append(_problem("node_gpus", {n.get("name"): node_gpus(n, gpn_setting) for n in nodes},
                            "The nodes see different numbers of GPUs (%s); every rank picks GPU rank %% "
                            "gpus_per_node with one value for all nodes."
                            % ", ".join("%s=%d" % (n.get("name"), node_gpus(n, gpn_setting)) for n in nodes),
                            "Give every node the same number of GPUs."))


def _check_version(settings, nodes, version, out):
    problem = version_problem(version)
    if problem:
        out.append(_problem("cluster_image_base", version, problem,
                            "Build the node image on a TensorRT-LLM %s base (cluster_image_base)."
                            % SUPPORTED_TEXT))
        return
    sup = support(version)
    _check_run(settings, version, out)
    family = settings.get(_var("family"))
    if family in sup["refused_families"]:
        out.append(_problem(_var("family"), family, "%s %s with tensorrt_llm %s: %s."
                            % (_var("family"), family, version, sup["refused_families"][family]),
                            "Use family %s with %s, or an image whose version builds %s."
                            % (" or ".join(sorted(sup["families"])), version, family)))
        return
    if family not in sup["families"]:
        out.append(_problem(_var("family"), family,
                            "%s %s: tensorrt_llm %s's %s converter is not one whose command line the "
                            "project recorded." % (_var("family"), family, version, family),
                            "Use family %s with tensorrt_llm %s." % (" or ".join(sorted(sup["families"])),
                                                                     version)))
        return
    fam = sup["families"][family]
    name = settings.get(_var("model_name")) or ""
    if sup["flow"] == "legacy" and fam.get("model_name") and name not in LEGACY_MODEL_NAMES:
        out.append(_problem(_var("model_name"), name,
                            "tensorrt_llm %s builds %s with examples/%s/build.py, which requires "
                            "--model_name." % (version, family, fam["dir"]),
                            "Set %s to one of %s (chatglm2_6b for chatglm2-6b)."
                            % (_var("model_name"), ", ".join(LEGACY_MODEL_NAMES))))
    elif name and not (sup["flow"] == "legacy" and fam.get("model_name")):
        out.append(_problem(_var("model_name"), name,
                            "tensorrt_llm %s builds %s without --model_name (%s)."
                            % (version, family, "convert_checkpoint.py + trtllm-build"
                               if sup["flow"] == "modern" else "its build.py has no such option"),
                            'Set %s: "".' % _var("model_name")))
    pp = settings.get(_var("pp_size"))
    if "max_pp" in fam and _is_int(pp) and pp > fam["max_pp"]:
        out.append(_problem(_var("pp_size"), pp,
                            "%s %d with tensorrt_llm %s: %s." % (_var("pp_size"), pp, version,
                                                                fam["max_pp_reason"]),
                            "Set %s: 1 and put the ranks in %s." % (_var("pp_size"), _var("tp_size"))))
    _check_devices(settings, nodes, version, out)


def _flag_given(args, flag):
    """Whether ``flag`` is in ``args`` (as itself or as flag=value)."""
    return any(isinstance(a, str) and (a == flag or a.startswith(flag + "=")) for a in args or [])


def _check_run(settings, version, out):
    """What examples/run.py of ``version`` would refuse at stage 90, checked before any build.

    run.py options and their checks per version (the recorded tables): 0.7.1 has no --run_profiling;
    0.9.0 asserts --use_py_session for --medusa_choices; 1.2 runs the Python session here
    (--use_py_session, see gpus_per_node_fix), whose checks refuse speculative decoding, variable
    beam width, --return_all_generated_tokens, and --streaming with beams (run.py turns on
    return_all_generated_tokens for it).
    """
    sup = support(version)
    extra = settings.get(_var("run_extra_args")) or []
    extra = extra if isinstance(extra, list) else []
    profiling = settings.get(_var("run_profiling"))
    if not sup["run_profiling"] and (profiling is True or str(profiling).lower() == "true"
                                     or _flag_given(extra, "--run_profiling")):
        given = "--run_profiling in %s" % _var("run_extra_args") if _flag_given(
            extra, "--run_profiling") else "%s: true" % _var("run_profiling")
        out.append(_problem(_var("run_profiling"), profiling if profiling else extra,
                            "%s with tensorrt_llm %s: its examples/run.py has no --run_profiling "
                            "(argparse would stop stage 90 with 'unrecognized arguments')."
                            % (given, version),
                            "Set %s: false and leave --run_profiling out of %s, or use tensorrt_llm "
                            "0.9.0 or 1.2.x, whose run.py has it." % (_var("run_profiling"),
                                                                      _var("run_extra_args"))))
    py_session = "--use_py_session" in gpus_per_node_fix(version, None)["run_args"] or _flag_given(
        extra, "--use_py_session")
    if not py_session:
        for flag, why in sorted(sup.get("run_needs_py_session", {}).items()):
            if _flag_given(extra, flag):
                out.append(_problem(_var("run_extra_args"), extra,
                                    "%s %s with tensorrt_llm %s: %s." % (_var("run_extra_args"), flag,
                                                                         version, why),
                                    "Leave %s out of %s, or add --use_py_session to it." % (
                                        flag, _var("run_extra_args"))))
        return
    for flag, why in sorted(sup.get("run_refused_with_py_session", {}).items()):
        if _flag_given(extra, flag):
            out.append(_problem(_var("run_extra_args"), extra,
                                "%s %s with tensorrt_llm %s: this project runs its examples/run.py "
                                "with --use_py_session (the session that takes gpus_per_node from "
                                "the engine), and run.py %s." % (_var("run_extra_args"), flag,
                                                                 version, why),
                                "Leave %s out of %s." % (flag, _var("run_extra_args"))))
    beams = settings.get(_var("num_beams"))
    if (sup.get("run_streaming_beams_need_cpp") and _flag_given(extra, "--streaming")
            and _is_int(beams) and beams > 1):
        out.append(_problem(_var("run_extra_args"), extra,
                            "%s --streaming with %s %d and tensorrt_llm %s: run.py turns on "
                            "return_all_generated_tokens for streaming beams, which it refuses in the "
                            "Python session this project runs (--use_py_session)."
                            % (_var("run_extra_args"), _var("num_beams"), beams, version),
                            "Leave --streaming out of %s, or set %s: 1." % (_var("run_extra_args"),
                                                                          _var("num_beams"))))


def device_problems(hosts, need, visible, version, gpus_per_node):
    """The device every rank picks (rank % gpus_per_node under ``version``'s rule) must exist.

    ``hosts``: [(name, slots)] in rank order; ``visible``: {name: GPUs}; ``gpus_per_node``: what
    the runtime uses. Shared by the request check (before a build) and the launch check (engine).
    """
    out = []
    fix_method = gpus_per_node_fix(version, gpus_per_node)["method"]
    devices = rank_devices(hosts, need, gpus_per_node) or {}
    for rank, where in sorted(devices.items()):
        have = visible.get(where["host"]) or 0
        if have and where["device"] >= have:
            out.append(_problem("node_gpus", have,
                                "Rank %d (%s) would ask for GPU %d (rank %d %% gpus_per_node %d), but %s "
                                "has %d GPU(s): 'invalid device ordinal'. tensorrt_llm %s %s."
                                % (rank, where["host"], where["device"], rank, gpus_per_node,
                                   where["host"], have, version,
                                   "always uses gpus_per_node=8 at run time and nothing supported "
                                   "changes it" if fix_method == "fixed" else
                                   "takes gpus_per_node from the engine, which holds %d" % gpus_per_node),
                                "Give %s at least %d GPUs (node_gpus; its ordinal %d is the one rank %d "
                                "uses), or use tensorrt_llm 1.2.x, which takes the GPUs per container "
                                "from the engine." % (where["host"], where["device"] + 1, where["device"],
                                                      rank)))
    if fix_method == "checkpoint_mapping" and need > gpus_per_node:
        for name, slots in hosts:
            if slots != gpus_per_node:
                out.append(_problem("node_slots", slots,
                                    "tensorrt_llm %s asserts that every node runs exactly gpus_per_node=%d "
                                    "ranks when the world (%d) is larger; %s runs %d."
                                    % (version, gpus_per_node, need, name, slots),
                                    "Set node_slots: %d on every node." % gpus_per_node))
    return out


def _check_devices(settings, nodes, version, out):
    tp, pp, need, hosts = world(settings, nodes)
    if need is None or need != sum(s for _, s in hosts):
        return
    gpn_setting = settings.get(_var("gpus_per_node"), 0)
    visible = {n.get("name"): node_gpus(n, gpn_setting) for n in nodes}
    fix = gpus_per_node_fix(version, max(visible.values() or [0]) or None)
    out.extend(device_problems(hosts, need, visible, version, fix["gpus_per_node"]))


def launch_problems(version, engine, np, hosts, gpus_visible, gpus_per_node):
    """Problems of launching ``engine`` (parsed config.json) with ``np`` ranks on ``hosts``.

    ``gpus_visible``: GPUs per container (int) or None when unknown (no device check).
    """
    tp, pp = engine["tp"], engine["pp"]
    need = world_size(tp, pp)
    slots = sum(s for _, s in hosts)
    layout = ", ".join("%s:%d" % hs for hs in hosts) or "no hosts"
    out = []
    if np != need:
        out.append(_problem("np", np, "The engine needs %d ranks (tp=%d, pp=%d); mpirun -np is %d."
                            % (need, tp, pp, np), "Launch with np = tp_size x pp_size = %d." % need))
    if slots < need:
        out.append(_problem("node_slots", slots, "The engine needs %d ranks (tp=%d, pp=%d); the hostfile "
                            "gives %d slots (%s)." % (need, tp, pp, slots, layout),
                            "Raise node_slots or lower cluster_trtllm_tp_size/pp_size."))
        return out
    if gpus_visible:
        out.extend(device_problems(hosts, need, {h: gpus_visible for h, _ in hosts}, version,
                                   gpus_per_node))
    return out


def request_problems(settings, nodes, version=None):
    """Every problem of a TensorRT-LLM request, as [{variable, value, message, fix}].

    ``settings``: the cluster_trtllm_* values by their variable names. ``nodes``: cluster_nodes
    entries ({name, slots, gpus}). ``version`` None: the checks that need no running node (values
    and types, tp x pp against the slots, one GPU per rank, family, dtype/quantization choices,
    beams >= 1). With the version read from the nodes, also: the version is one the project serves,
    legacy/modern routing and the family's tools, pp limits, model_name, what that version's run.py
    would refuse at stage 90 (--run_profiling, run_extra_args against its session), and the device
    every rank will pick under that version's gpus_per_node rule.
    """
    out = []
    settings = normalize_settings(settings)
    _check_settings(settings, out)
    _check_world(settings, nodes, out)
    if version is not None:
        _check_version(settings, nodes, version, out)
    return out


def format_problems(problems):
    """One paragraph: '(1) message Fix: fix (2) ...'."""
    return " ".join("(%d) %s Fix: %s" % (i, p["message"], p["fix"]) for i, p in enumerate(problems, 1))


# --------------------------------------------------------------------------- gpus_per_node

def gpus_per_node_fix(version, gpus_visible):
    """How ``version`` is made to use ``gpus_visible`` GPUs per container.

    Returns dict(method, gpus_per_node, run_args, checkpoint_mapping, reason):
    method 'fixed' (0.7.1, 0.9.0: the runtime always uses 8; gpus_per_node is 8 and the layout
    check above refuses what would not work) or 'checkpoint_mapping' (1.2: the checkpoint's
    config.json mapping.gpus_per_node is set to the GPUs per container before trtllm-build, which
    keeps it in the engine; run.py runs the Python session, which picks rank % that value).
    """
    sup = support(version)
    gpn = int(gpus_visible) if gpus_visible else DEFAULT_GPUS_PER_NODE
    if sup["gpn"] == "checkpoint_mapping":
        return {"method": "checkpoint_mapping", "gpus_per_node": gpn, "run_args": ["--use_py_session"],
                "checkpoint_mapping": {"gpus_per_node": gpn},
                "reason": "tensorrt_llm %s: the checkpoint's mapping.gpus_per_node=%d is kept by "
                          "trtllm-build and read by the Python session (run.py --use_py_session)"
                          % (version, gpn)}
    return {"method": "fixed", "gpus_per_node": DEFAULT_GPUS_PER_NODE, "run_args": [],
            "checkpoint_mapping": None,
            "reason": "tensorrt_llm %s always uses gpus_per_node=8 (rank r uses GPU r %% 8 of its "
                      "container); the layout was checked to give every rank that GPU" % version}


# --------------------------------------------------------------------------- engine identity

def engine_request(settings, version, gpus_per_node):
    """The engine identity, built once: what stage 80 builds and stage 90 runs.

    ``settings``: cluster_trtllm_* values; ``gpus_per_node``: GPUs each container sees.
    """
    sup = support(version)
    settings = normalize_settings(settings)
    family = settings[_var("family")]
    return {
        "version": str(version), "flow": sup["flow"], "family": family,
        "model_name": settings.get(_var("model_name")) or None,
        "model_dir": settings[_var("model_dir")], "dtype": settings[_var("dtype")],
        "quantization": settings[_var("quantization")],
        "tp_size": int(settings[_var("tp_size")]), "pp_size": int(settings[_var("pp_size")]),
        "gpus_per_node": int(gpus_per_node) if gpus_per_node else None,
        "max_batch_size": int(settings[_var("max_batch_size")]),
        "max_input_len": int(settings[_var("max_input_len")]),
        "max_output_len": int(settings[_var("engine_max_output_len")]),
        "max_beam_width": int(settings[_var("num_beams")]),
        "extra_convert_args": [str(a) for a in settings.get(_var("extra_convert_args")) or []],
        "extra_build_args": [str(a) for a in settings.get(_var("extra_build_args")) or []],
    }


def validate_request(req):
    """Raise TrtllmConfigError for a request the version cannot serve (the module-side check)."""
    sup = support(req["version"])
    if req["family"] not in sup["families"]:
        raise TrtllmConfigError("family %r is not built with tensorrt_llm %s (served: %s)"
                                % (req["family"], req["version"], ", ".join(sorted(sup["families"]))))
    for key in ("tp_size", "pp_size", "max_batch_size", "max_input_len", "max_output_len",
                "max_beam_width"):
        if int(req[key]) < 1:
            raise TrtllmConfigError("%s=%s must be >= 1" % (key, req[key]))
    if req["dtype"] not in DTYPES or req["quantization"] not in QUANTIZATIONS:
        raise TrtllmConfigError("dtype %r / quantization %r not supported" % (req["dtype"],
                                                                             req["quantization"]))
    if not str(req["model_dir"]).startswith("/"):
        raise TrtllmConfigError("model_dir %r must be an absolute path" % (req["model_dir"],))
    fam = sup["families"][req["family"]]
    if req["pp_size"] > fam.get("max_pp", req["pp_size"]):
        raise TrtllmConfigError("pp_size %d with tensorrt_llm %s: %s"
                                % (req["pp_size"], req["version"], fam["max_pp_reason"]))
    if sup["flow"] == "legacy" and fam.get("model_name") and req["model_name"] not in LEGACY_MODEL_NAMES:
        raise TrtllmConfigError("model_name %r is not one of %s" % (req["model_name"],
                                                                   ", ".join(LEGACY_MODEL_NAMES)))
    return req


def engine_dir_name(req):
    """'<model_name-or-family>-<dtype>[-wo_int8|-wo_int4]-tp<T>-pp<P>[-beam<B>]'."""
    parts = [req["model_name"] or req["family"], req["dtype"]]
    if req["quantization"] != "none":
        parts.append(req["quantization"])
    parts += ["tp%d" % req["tp_size"], "pp%d" % req["pp_size"]]
    if req["max_beam_width"] > 1:
        parts.append("beam%d" % req["max_beam_width"])
    return "-".join(parts)


def engine_hash_inputs(req):
    """Everything that changes the engine files (the cache key)."""
    inputs = {k: req[k] for k in (
        "flow", "version", "family", "model_name", "model_dir", "dtype", "quantization", "tp_size",
        "pp_size", "max_batch_size", "max_input_len", "max_output_len", "max_beam_width",
        "extra_convert_args", "extra_build_args")}
    fix = gpus_per_node_fix(req["version"], req["gpus_per_node"])
    inputs["gpus_per_node"] = fix["gpus_per_node"] if fix["method"] == "checkpoint_mapping" else None
    return inputs


def engine_inputs_hash(inputs):
    text = json.dumps(inputs, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def expected_engine_files(flow, tp, pp, model_name=None, dtype=None):
    """Rank engine file names as the real tools write them."""
    ranks = world_size(tp, pp)
    if flow == "legacy":
        pp_part = "_pp%d" % pp if pp > 1 else ""
        return ["%s_%s_tp%d%s_rank%d.engine" % (model_name, dtype, tp, pp_part, r) for r in range(ranks)]
    return ["rank%d.engine" % r for r in range(ranks)]


# --------------------------------------------------------------------------- command lines

def _weight_only_args(req):
    if req["quantization"] == "none":
        return []
    return ["--use_weight_only", "--weight_only_precision", req["quantization"][3:]]


def legacy_build_argv(req, script, output_dir, python="python3", build_gpus=None):
    """examples/<family>/build.py of 0.7.1. Builds every rank in one process.

    ``--gpus_per_node`` there only picks the GPU each rank is built on (rank % value): the GPUs of
    the building container, else rank 1 asks for a GPU the builder lacks.
    """
    fam = support(req["version"])["families"][req["family"]]
    argv = [python, script]
    if fam.get("model_name"):
        argv += ["--model_name", req["model_name"]]
    ranks = world_size(req["tp_size"], req["pp_size"])
    argv += [fam["model_dir_flag"], req["model_dir"], "--output_dir", output_dir,
             "--dtype", req["dtype"], "--tp_size", str(req["tp_size"]),
             "--pp_size", str(req["pp_size"]), "--world_size", str(ranks),
             "--gpus_per_node", str(build_gpus or req["gpus_per_node"] or DEFAULT_GPUS_PER_NODE),
             "--max_batch_size", str(req["max_batch_size"]),
             "--max_input_len", str(req["max_input_len"]),
             "--max_output_len", str(req["max_output_len"]),
             "--max_beam_width", str(req["max_beam_width"])]
    return argv + _weight_only_args(req) + req["extra_build_args"]


def convert_checkpoint_argv(req, script, ckpt_dir, python="python3"):
    """convert_checkpoint.py of the family (modern flow): one safetensors per rank."""
    argv = [python, script, "--model_dir", req["model_dir"], "--output_dir", ckpt_dir,
            "--dtype", req["dtype"], "--tp_size", str(req["tp_size"]), "--pp_size", str(req["pp_size"])]
    return argv + _weight_only_args(req) + req["extra_convert_args"]


def trtllm_build_argv(req, ckpt_dir, output_dir, trtllm_build="trtllm-build"):
    """trtllm-build; parallelism comes from the checkpoint."""
    sup = support(req["version"])
    argv = [trtllm_build, "--checkpoint_dir", ckpt_dir, "--output_dir", output_dir,
            "--max_batch_size", str(req["max_batch_size"]),
            "--max_input_len", str(req["max_input_len"])]
    if sup.get("max_seq_len"):
        argv += ["--max_seq_len", str(req["max_input_len"] + req["max_output_len"])]
    else:
        argv += ["--max_output_len", str(req["max_output_len"])]
    argv += ["--max_beam_width", str(req["max_beam_width"])]
    if sup.get("custom_all_reduce_flag") and world_size(req["tp_size"], req["pp_size"]) > 1:
        # Custom all-reduce needs CUDA peer access, which ranks in other containers never have.
        argv += ["--use_custom_all_reduce", "disable"]
    return argv + req["extra_build_args"]


def build_plan(req, examples_dir, output_dir, ckpt_dir, python="python3", trtllm_build="trtllm-build",
               build_gpus=None):
    """Steps [{name, argv, cwd, checkpoint_mapping}] that build ``req`` into ``output_dir``.

    Legacy build.py writes its timing cache (model.cache) into its working directory: the output
    directory. ``checkpoint_mapping``: keys to set in the checkpoint config.json's mapping after the
    conversion (1.2: gpus_per_node).
    """
    fdir = family_dir(req["version"], req["family"], examples_dir)
    if req["flow"] == "legacy":
        return [{"name": "build.py", "cwd": output_dir, "checkpoint_mapping": None,
                 "argv": legacy_build_argv(req, posixpath.join(fdir, "build.py"), output_dir, python,
                                           build_gpus)}]
    fix = gpus_per_node_fix(req["version"], req["gpus_per_node"])
    return [
        {"name": "convert_checkpoint.py", "cwd": None, "checkpoint_mapping": fix["checkpoint_mapping"],
         "argv": convert_checkpoint_argv(req, posixpath.join(fdir, "convert_checkpoint.py"), ckpt_dir,
                                         python)},
        {"name": "trtllm-build", "cwd": None, "checkpoint_mapping": None,
         "argv": trtllm_build_argv(req, ckpt_dir, output_dir, trtllm_build)},
    ]


def run_py_argv(version, script, engine_dir, tokenizer_dir, input_texts, max_output_len,
                num_beams=1, temperature=None, top_k=None, top_p=None, repetition_penalty=None,
                length_penalty=None, max_input_length=None, run_profiling=False,
                use_py_session=False, log_level=None, extra_args=(), python="python3"):
    """argv of examples/run.py for ``version``; refuses options it does not have."""
    key = version_key(version)
    support(version)
    texts = list(input_texts or [])
    if not texts:
        raise TrtllmConfigError("input_texts is empty; give at least one prompt")
    for i, text in enumerate(texts):
        if not str(text).strip() or str(text).startswith("-"):
            raise TrtllmConfigError("input_texts[%d] %r is empty or starts with '-', which run.py's "
                                    "argparse reads as an option; rephrase the prompt" % (i, text))
    if int(max_output_len) < 1 or int(num_beams) < 1:
        raise TrtllmConfigError("max_output_len=%s and num_beams=%s must be >= 1"
                                % (max_output_len, num_beams))
    if run_profiling and not SUPPORTED[key]["run_profiling"]:
        raise TrtllmConfigError("run_profiling: examples/run.py of tensorrt_llm %s has no "
                                "--run_profiling; set cluster_trtllm_run_profiling: false" % version)
    argv = [python, script, "--engine_dir", engine_dir, "--tokenizer_dir", tokenizer_dir,
            "--max_output_len", str(int(max_output_len)), "--num_beams", str(int(num_beams))]
    for flag, value in (("--temperature", temperature), ("--top_k", top_k), ("--top_p", top_p),
                        ("--repetition_penalty", repetition_penalty),
                        ("--length_penalty", length_penalty),
                        ("--max_input_length", max_input_length), ("--log_level", log_level)):
        if value is not None:
            argv += [flag, str(value)]
    if run_profiling:
        argv.append("--run_profiling")
    if use_py_session:
        argv.append("--use_py_session")
    argv += [str(a) for a in extra_args or ()]
    # --input_text is nargs='+': all prompts follow one flag, last on the line.
    return argv + ["--input_text"] + [str(t) for t in texts]


# --------------------------------------------------------------------------- stage decision

def stage_decision(mode, host_gpus, node_facts, nodes, gpus_per_node=0):
    """Whether stages 80/90 run: {run, reason, fail}.

    ``mode``: cluster_trtllm_enabled as text; ``host_gpus``: the docker host's GPU ids (None:
    unknown); ``node_facts``: {node: trtllm_engine_facts result or None}; ``nodes``: cluster_nodes.
    ``fail`` is True where the user asked for the stages (true) but they cannot run.
    """
    mode = str(mode).lower()
    if mode not in ("auto", "true", "false"):
        return {"run": False, "fail": True,
                "reason": "cluster_trtllm_enabled is %s; it must be auto, true or false" % mode}
    if mode == "false":
        return {"run": False, "fail": False, "reason": "cluster_trtllm_enabled is false"}
    if mode == "auto" and host_gpus is not None and len(host_gpus) == 0:
        return {"run": False, "fail": False,
                "reason": "the docker host has no GPUs (nvidia-smi lists none there), so no node can run "
                          "TensorRT-LLM. Run on a GPU host with the NVIDIA driver and container toolkit and "
                          "pin GPUs with node_gpus, or set cluster_trtllm_enabled: false to silence this line"}
    facts = node_facts or {}
    missing = [n for n in sorted(facts) if not (facts[n] or {}).get("present")]
    if missing:
        first = next(((facts[n] or {}).get("reason") for n in missing if (facts[n] or {}).get("reason")), "")
        return {"run": False, "fail": mode == "true",
                "reason": "no TensorRT-LLM on %s (%s). Set cluster_image_base to a TensorRT-LLM image "
                          "(tensorrt_llm %s), or cluster_trtllm_enabled: false"
                          % (", ".join(missing), first, SUPPORTED_TEXT)}
    unusable = [n for n in sorted(facts) if not facts[n].get("supported")]
    if unusable:
        return {"run": False, "fail": mode == "true",
                "reason": "TensorRT-LLM on %s cannot run this flow: %s"
                          % (", ".join(unusable), facts[unusable[0]].get("reason"))}
    if sum(node_gpus(n, gpus_per_node) for n in nodes) == 0:
        return {"run": False, "fail": mode == "true",
                "reason": "no GPUs pinned to any node (node_gpus is empty everywhere). Pin GPUs with "
                          "node_gpus, or set cluster_trtllm_enabled: true and cluster_trtllm_gpus_per_node to "
                          "the GPUs each container sees"}
    return {"run": True, "fail": False, "reason": ""}


def node_problems(node_facts, dirs, settings):
    """Problems only the nodes can show: versions that differ, model/tokenizer dirs missing.

    ``dirs``: {node: {path: is_dir}}.
    """
    out = []
    versions = {n: (f or {}).get("version") for n, f in sorted((node_facts or {}).items())}
    if len(set(versions.values())) > 1:
        out.append(_problem("cluster_image_base", versions,
                            "The nodes hold different tensorrt_llm versions (%s)."
                            % ", ".join("%s=%s" % kv for kv in versions.items()),
                            "Run every node on the same image."))
    for node, paths in sorted((dirs or {}).items()):
        for path, is_dir in sorted(paths.items()):
            if not is_dir:
                var = _var("model_dir") if path == settings.get(_var("model_dir")) else _var("tokenizer_dir")
                out.append(_problem(var, path, "%s %s is not a directory on node %s." % (var, path, node),
                                    "Put the Hugging Face model on the shared mount or fix the path."))
    return out
