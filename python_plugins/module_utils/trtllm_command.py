# -*- coding: utf-8 -*-
"""TensorRT-LLM command construction, version rules and the world contract.

Plain Python (no Ansible imports, no I/O). Facts about the real CLIs come from
/work/shared/reference/tensorrt-llm-cli.md (the project's reference page) and
TensorRT-LLM's own sources:

* < 0.7     no examples/run.py: refused.
* 0.7.x     legacy flow: one examples/<family>/build.py per family.
* >= 0.8    modern flow: examples/<family>/convert_checkpoint.py, then trtllm-build.
* 0.8, 0.9  trtllm-build defaults to --use_custom_all_reduce enable (needs GPU
            peer access, impossible across containers); the flag is gone later.
* >= 0.11   trtllm-build takes --max_seq_len (input + output) instead of
            --max_output_len, and writes --gpus_per_node into the engine's
            pretrained_config.mapping, which both runtimes then read.

Every rank picks CUDA device ``rank % gpus_per_node``. See
``gpus_per_node_fix`` for how each version is made to use the GPUs a
container really has.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re

from ansible.module_utils.mtrt_mpi import expected_placement

DEFAULT_GPUS_PER_NODE = 8
HASH_FILE = "mtrt-build.json"
DTYPES = ("float16", "bfloat16", "float32")
QUANTIZATIONS = ("none", "wo_int8", "wo_int4")

RUN_PY_SINCE = (0, 7)
MODERN_SINCE = (0, 8)
CUSTOM_ALL_REDUCE_FLAG = ((0, 8), (0, 10))   # [since, until)
MAX_SEQ_LEN_SINCE = (0, 11)
GPUS_PER_NODE_BUILD_SINCE = (0, 11)

# family -> architecture written by the modern flow, legacy model names
# (build.py --model_name; None: build.py has no such option).
FAMILIES = {
    "chatglm": {
        "architecture": "ChatGLMForCausalLM",
        "legacy_model_names": ("chatglm_6b", "chatglm2_6b", "chatglm2_6b_32k", "chatglm3_6b",
                               "chatglm3_6b_base", "chatglm3_6b_32k", "glm_10b"),
    },
    "llama": {"architecture": "LlamaForCausalLM", "legacy_model_names": None},
    "gpt": {"architecture": "GPTForCausalLM", "legacy_model_names": None},
    "qwen": {"architecture": "QWenForCausalLM", "legacy_model_names": None},
}

_VERSION_RE = re.compile(r"^\s*v?(\d+)\.(\d+)(?:\.(\d+))?([0-9A-Za-z.+\-]*)\s*$")


class TrtllmConfigError(ValueError):
    """A request that the TensorRT-LLM version in the image cannot serve."""


def parse_version(text):
    """'0.8.0.dev2024012301' -> (0, 8, 0). Raises TrtllmConfigError."""
    match = _VERSION_RE.match(str(text or ""))
    if not match:
        raise TrtllmConfigError(
            "tensorrt_llm version %r is not a version number like 0.7.1 or 0.12.0; "
            "pass the version the facts module reports (trtllm_facts: version)" % (text,))
    return tuple(int(part or 0) for part in match.groups()[:3])


def _fmt(ver):
    return ".".join(str(p) for p in ver[:2])


def flow_for_version(version):
    """Return 'legacy' (0.7.x) or 'modern' (>= 0.8); refuse < 0.7."""
    ver = parse_version(version)
    if ver[:2] < RUN_PY_SINCE:
        raise TrtllmConfigError(
            "tensorrt_llm %s has no examples/run.py (it appears in 0.7.0); use an image with "
            "tensorrt_llm 0.7.x or later" % version)
    return "legacy" if ver[:2] < MODERN_SINCE else "modern"


# --------------------------------------------------------------------------- engine spec

def normalize_engine_spec(raw):
    """Validate the engine request and fill defaults. Returns a new dict.

    Keys: version, family, model_name, model_dir, dtype, quantization, tp_size,
    pp_size, gpus_per_node (GPUs per container; None = runtime default 8),
    max_batch_size, max_input_len, max_output_len, extra_convert_args,
    extra_build_args.
    """
    spec = {
        "version": raw.get("version"),
        "family": raw.get("family"),
        "model_name": raw.get("model_name") or None,
        "model_dir": raw.get("model_dir"),
        "dtype": raw.get("dtype") or "float16",
        "quantization": raw.get("quantization") or "none",
        "tp_size": int(raw.get("tp_size") or 1),
        "pp_size": int(raw.get("pp_size") or 1),
        "gpus_per_node": raw.get("gpus_per_node"),
        "max_batch_size": int(raw.get("max_batch_size") or 1),
        "max_input_len": int(raw.get("max_input_len") or 1024),
        "max_output_len": int(raw.get("max_output_len") or 1024),
        "extra_convert_args": [str(a) for a in raw.get("extra_convert_args") or []],
        "extra_build_args": [str(a) for a in raw.get("extra_build_args") or []],
    }
    spec["flow"] = flow_for_version(spec["version"])
    family = spec["family"]
    if family not in FAMILIES:
        raise TrtllmConfigError(
            "model family %r is not supported; set the family to one of %s"
            % (family, ", ".join(sorted(FAMILIES))))
    names = FAMILIES[family]["legacy_model_names"]
    if spec["flow"] == "legacy" and names:
        if spec["model_name"] not in names:
            raise TrtllmConfigError(
                "model_name %r: the legacy %s/build.py of tensorrt_llm %s needs --model_name, one of %s "
                "(e.g. chatglm2_6b for chatglm2-6b)" % (spec["model_name"], family, spec["version"],
                                                        ", ".join(names)))
    elif spec["model_name"] and spec["flow"] == "legacy":
        raise TrtllmConfigError(
            "model_name %r: the legacy %s/build.py has no --model_name; leave model_name unset"
            % (spec["model_name"], family))
    if not spec["model_dir"] or not str(spec["model_dir"]).startswith("/"):
        raise TrtllmConfigError("model_dir %r must be an absolute path as seen from the nodes"
                                % (spec["model_dir"],))
    if spec["dtype"] not in DTYPES:
        raise TrtllmConfigError("dtype %r is not one of %s" % (spec["dtype"], ", ".join(DTYPES)))
    if spec["quantization"] not in QUANTIZATIONS:
        raise TrtllmConfigError("quantization %r is not one of %s"
                                % (spec["quantization"], ", ".join(QUANTIZATIONS)))
    for key in ("tp_size", "pp_size", "max_batch_size", "max_input_len", "max_output_len"):
        if spec[key] < 1:
            raise TrtllmConfigError("%s=%d must be >= 1" % (key, spec[key]))
    if spec["gpus_per_node"] is not None:
        spec["gpus_per_node"] = int(spec["gpus_per_node"])
        if spec["gpus_per_node"] < 1:
            raise TrtllmConfigError(
                "gpus_per_node=%d: a container needs at least one GPU to run an engine rank"
                % spec["gpus_per_node"])
    return spec


def engine_dir_name(spec):
    """'<model_name-or-family>-<dtype>[-wo_int8|-wo_int4]-tp<T>-pp<P>'."""
    parts = [spec["model_name"] or spec["family"], spec["dtype"]]
    if spec["quantization"] != "none":
        parts.append(spec["quantization"])
    parts += ["tp%d" % spec["tp_size"], "pp%d" % spec["pp_size"]]
    return "-".join(parts)


def engine_hash_inputs(spec):
    """Everything that changes the engine files (the cache key)."""
    inputs = {k: spec[k] for k in (
        "flow", "version", "family", "model_name", "model_dir", "dtype", "quantization",
        "tp_size", "pp_size", "max_batch_size", "max_input_len", "max_output_len",
        "extra_convert_args", "extra_build_args")}
    # Legacy build.py's --gpus_per_node only picks the GPU that builds; it is not
    # written into the engine, so it does not belong in the key there.
    fix = gpus_per_node_fix(spec["version"], spec["gpus_per_node"])
    inputs["gpus_per_node"] = fix["gpus_per_node"] if fix["method"] == "build_option" else None
    return inputs


def engine_inputs_hash(inputs):
    """sha256 hex of the canonical JSON of ``inputs``."""
    text = json.dumps(inputs, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def world_size(spec):
    return spec["tp_size"] * spec["pp_size"]


def expected_engine_files(flow, tp, pp, model_name=None, dtype=None):
    """Rank engine file names as the real tools write them."""
    world = tp * pp
    if flow == "legacy":
        pp_part = "_pp%d" % pp if pp > 1 else ""
        return ["%s_%s_tp%d%s_rank%d.engine" % (model_name, dtype, world, pp_part, r)
                for r in range(world)]
    return ["rank%d.engine" % r for r in range(world)]


# --------------------------------------------------------------------------- build commands

def _weight_only_args(spec):
    if spec["quantization"] == "none":
        return []
    return ["--use_weight_only", "--weight_only_precision", spec["quantization"][3:]]


def legacy_build_argv(spec, script, output_dir, python="python3"):
    """examples/<family>/build.py of 0.7.x. Builds every rank in one process."""
    argv = [python, script]
    if spec["model_name"]:
        argv += ["--model_name", spec["model_name"]]
    argv += ["--model_dir", spec["model_dir"], "--output_dir", output_dir,
             "--dtype", spec["dtype"],
             "--tp_size", str(spec["tp_size"]), "--pp_size", str(spec["pp_size"]),
             "--world_size", str(world_size(spec)),
             "--gpus_per_node", str(spec["gpus_per_node"] or DEFAULT_GPUS_PER_NODE),
             "--max_batch_size", str(spec["max_batch_size"]),
             "--max_input_len", str(spec["max_input_len"]),
             "--max_output_len", str(spec["max_output_len"])]
    return argv + _weight_only_args(spec) + spec["extra_build_args"]


def convert_checkpoint_argv(spec, script, ckpt_dir, python="python3"):
    """examples/<family>/convert_checkpoint.py (>= 0.8): one safetensors per rank."""
    argv = [python, script, "--model_dir", spec["model_dir"], "--output_dir", ckpt_dir,
            "--dtype", spec["dtype"],
            "--tp_size", str(spec["tp_size"]), "--pp_size", str(spec["pp_size"])]
    return argv + _weight_only_args(spec) + spec["extra_convert_args"]


def trtllm_build_argv(spec, ckpt_dir, output_dir, trtllm_build="trtllm-build"):
    """trtllm-build (>= 0.8); parallelism comes from the checkpoint."""
    ver = parse_version(spec["version"])[:2]
    argv = [trtllm_build, "--checkpoint_dir", ckpt_dir, "--output_dir", output_dir,
            "--max_batch_size", str(spec["max_batch_size"]),
            "--max_input_len", str(spec["max_input_len"])]
    if ver >= MAX_SEQ_LEN_SINCE:
        argv += ["--max_seq_len", str(spec["max_input_len"] + spec["max_output_len"])]
    else:
        argv += ["--max_output_len", str(spec["max_output_len"])]
    if CUSTOM_ALL_REDUCE_FLAG[0] <= ver < CUSTOM_ALL_REDUCE_FLAG[1] and world_size(spec) > 1:
        # Custom all-reduce needs CUDA peer access, which ranks in different
        # containers never have.
        argv += ["--use_custom_all_reduce", "disable"]
    fix = gpus_per_node_fix(spec["version"], spec["gpus_per_node"])
    argv += fix["build_args"]
    return argv + spec["extra_build_args"]


def build_plan(spec, examples_dir, output_dir, ckpt_dir, python="python3",
               trtllm_build="trtllm-build", family_dir=None):
    """Steps [{name, argv, cwd}] that build ``spec`` into ``output_dir``.

    ``family_dir`` is where the family's scripts live (facts report it);
    default ``<examples_dir>/<family>``. Legacy build.py writes its timing
    cache (model.cache) into its working directory: the output directory.
    """
    family_dir = family_dir or posixpath.join(examples_dir, spec["family"])
    if spec["flow"] == "legacy":
        return [{"name": "build.py", "cwd": output_dir,
                 "argv": legacy_build_argv(spec, posixpath.join(family_dir, "build.py"),
                                           output_dir, python)}]
    return [
        {"name": "convert_checkpoint.py", "cwd": None,
         "argv": convert_checkpoint_argv(spec, posixpath.join(family_dir, "convert_checkpoint.py"),
                                         ckpt_dir, python)},
        {"name": "trtllm-build", "cwd": None,
         "argv": trtllm_build_argv(spec, ckpt_dir, output_dir, trtllm_build)},
    ]


# --------------------------------------------------------------------------- run.py

def run_py_argv(version, script, engine_dir, tokenizer_dir, input_texts, max_output_len,
                num_beams=1, temperature=None, top_k=None, top_p=None, repetition_penalty=None,
                length_penalty=None, max_input_length=None, run_profiling=False,
                use_py_session=False, log_level=None, extra_args=(), python="python3"):
    """argv of examples/run.py for ``version``; refuses options it does not have."""
    ver = parse_version(version)[:2]
    flow_for_version(version)
    texts = list(input_texts or [])
    if not texts:
        raise TrtllmConfigError("input_texts is empty; give at least one prompt")
    for i, text in enumerate(texts):
        if not str(text).strip():
            raise TrtllmConfigError("input_texts[%d] is empty; every prompt needs text" % i)
        if str(text).startswith("-"):
            raise TrtllmConfigError(
                "input_texts[%d] %r starts with '-', which run.py's argparse reads as an option; "
                "rephrase the prompt" % (i, text))
    if int(max_output_len) < 1:
        raise TrtllmConfigError("max_output_len=%s must be >= 1" % max_output_len)
    if int(num_beams) < 1:
        raise TrtllmConfigError("num_beams=%s must be >= 1" % num_beams)
    if run_profiling and ver < (0, 8):
        raise TrtllmConfigError(
            "run_profiling: examples/run.py of tensorrt_llm %s has no --run_profiling (it appears "
            "in 0.8); set run_profiling to false" % version)
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


# --------------------------------------------------------------------------- gpus_per_node

PATCH_FILE = "tensorrt_llm/runtime/model_runner.py"
PATCH_MARKER = "# mtrt: gpus_per_node patch"
PATCH_ANCHOR = re.compile(
    r"^(?P<indent>[ \t]*)torch\.cuda\.set_device\(\s*rank\s*%\s*runtime_mapping\.gpus_per_node\s*\)")
_PATCH_LINE = re.compile(r"^[ \t]*runtime_mapping\.gpus_per_node = (\d+)\s*" + re.escape(PATCH_MARKER))


def gpus_per_node_fix(version, gpus_visible):
    """How ``version`` is made to use ``gpus_visible`` GPUs per container.

    Returns dict(method, gpus_per_node, build_args, run_args, patch, reason).
    method: 'none' (the runtime's 8 is right), 'build_option' (>= 0.11:
    trtllm-build --gpus_per_node N is written into the engine's mapping and
    read by both runtimes) or 'patch_model_runner' (0.7-0.10: the runtime
    always uses 8; the only supported switch is the Python session, whose
    ModelRunner.from_dir sets the device from ``runtime_mapping``; a line
    setting ``runtime_mapping.gpus_per_node`` just before
    ``torch.cuda.set_device(rank % runtime_mapping.gpus_per_node)`` also
    reaches GenerationSession, which gets the same mapping object. The C++
    session (run.py's default there) builds WorldConfig with 8 and cannot be
    patched from Python, hence run.py --use_py_session).

    CUDA_VISIBLE_DEVICES is no fix: it can only hide or reorder GPUs, and a
    container with one GPU cannot expose a device ordinal 1 however it is set.
    """
    ver = parse_version(version)[:2]
    gpn = int(gpus_visible) if gpus_visible else DEFAULT_GPUS_PER_NODE
    fix = {"method": "none", "gpus_per_node": gpn, "build_args": [], "run_args": [],
           "patch": None, "reason": ""}
    if ver >= GPUS_PER_NODE_BUILD_SINCE:
        fix.update(method="build_option", build_args=["--gpus_per_node", str(gpn)],
                   reason="tensorrt_llm %s: trtllm-build --gpus_per_node %d is written into the "
                          "engine's mapping and read by the runtime" % (version, gpn))
    elif gpn == DEFAULT_GPUS_PER_NODE:
        fix["reason"] = ("tensorrt_llm %s always uses gpus_per_node=8, which matches the %d GPUs "
                         "per container" % (version, gpn))
    else:
        fix.update(method="patch_model_runner", run_args=["--use_py_session"],
                   patch={"file": PATCH_FILE, "anchor": PATCH_ANCHOR.pattern,
                          "line": "runtime_mapping.gpus_per_node = %d  %s" % (gpn, PATCH_MARKER),
                          "marker": PATCH_MARKER},
                   reason="tensorrt_llm %s always uses gpus_per_node=8 at run time (nothing in the "
                          "engine or on the command line changes it); with %d GPU(s) per container "
                          "rank r asks for GPU r %% 8. Fix: patch %s to set gpus_per_node=%d and run "
                          "run.py with --use_py_session" % (version, gpn, PATCH_FILE, gpn))
    return fix


def patch_state(text):
    """dict(anchors, applied, value) of a model_runner.py text."""
    lines = text.splitlines()
    values = [int(m.group(1)) for m in (_PATCH_LINE.match(l) for l in lines) if m]
    return {"anchors": sum(1 for l in lines if PATCH_ANCHOR.match(l)),
            "applied": bool(values), "value": values[0] if values else None}


def apply_patch(text, gpus_per_node):
    """Insert the patch line before every anchor. Returns (new_text, changed).

    Idempotent; a patch with another value is replaced. Raises
    TrtllmConfigError when the anchor is missing (unknown file version).
    """
    base, _ = revert_patch(text)
    out, found = [], 0
    for line in base.splitlines(True):
        match = PATCH_ANCHOR.match(line)
        if match:
            found += 1
            out.append("%sruntime_mapping.gpus_per_node = %d  %s\n"
                       % (match.group("indent"), int(gpus_per_node), PATCH_MARKER))
        out.append(line)
    if not found:
        raise TrtllmConfigError(
            "%s has no line 'torch.cuda.set_device(rank %% runtime_mapping.gpus_per_node)'; this "
            "tensorrt_llm build is not one the gpus_per_node patch knows - nothing was changed"
            % PATCH_FILE)
    new = "".join(out)
    return new, new != text


def revert_patch(text):
    """Remove every patch line. Returns (new_text, changed)."""
    kept = [l for l in text.splitlines(True) if not _PATCH_LINE.match(l)]
    new = "".join(kept)
    return new, new != text


# --------------------------------------------------------------------------- world contract

def _as_host_map(value, hosts):
    if isinstance(value, dict):
        return {h: value.get(h) for h in hosts}
    return {h: value for h in hosts}


def rank_devices(hosts_slots, np, gpus_per_node):
    """{rank: {host, device}} for Open MPI's by-slot placement; None if np > slots."""
    placement = expected_placement(hosts_slots, np)
    if placement is None:
        return None
    return {r: {"host": h, "device": r % gpus_per_node} for r, h in placement.items()}


def check_world(tp, pp, np, slots_per_node, gpus_per_node_visible,
                gpus_per_node=DEFAULT_GPUS_PER_NODE):
    """Every problem of the launch, as sentences naming the numbers and the fix.

    ``slots_per_node``: [(host, slots)] in hostfile order (dict keeps order).
    ``gpus_per_node_visible``: GPUs per container, an int or {host: int}.
    ``gpus_per_node``: what the runtime will use for ``rank % gpus_per_node``.
    """
    hosts_slots = list(slots_per_node.items()) if isinstance(slots_per_node, dict) \
        else [tuple(x) for x in slots_per_node]
    hosts = [h for h, _ in hosts_slots]
    visible = _as_host_map(gpus_per_node_visible, hosts)
    need = tp * pp
    slots = sum(s for _, s in hosts_slots)
    layout = ", ".join("%s:%d" % hs for hs in hosts_slots) or "no hosts"
    problems = []
    if np != need:
        problems.append("Engine needs %d ranks (tp=%d, pp=%d); mpirun -np is %d. Launch with "
                        "np = tp_size x pp_size = %d." % (need, tp, pp, np, need))
    if slots < need:
        problems.append("Engine needs %d ranks (tp=%d, pp=%d); hostfile gives %d slots (%s). Raise "
                        "node_slots in the inventory or lower tp_size/pp_size."
                        % (need, tp, pp, slots, layout))
        return problems
    devices = rank_devices(hosts_slots, need, gpus_per_node) or {}
    per_host = {}
    for rank, where in sorted(devices.items()):
        per_host.setdefault(where["host"], []).append(rank)
    for host, ranks in per_host.items():
        gpus = visible.get(host)
        if gpus is None:
            continue
        if len(ranks) > gpus:
            problems.append(
                "%s gets %d ranks (%s) but has %d GPU(s) visible; one rank needs one GPU. Set "
                "node_slots of %s to %d or give it more GPUs (node_gpus)."
                % (host, len(ranks), ", ".join(map(str, ranks)), gpus, host, gpus))
        for rank in ranks:
            dev = devices[rank]["device"]
            if gpus and dev >= gpus:
                problems.append(
                    "Rank %d (%s) would ask for GPU %d (rank %d %% gpus_per_node %d), but %s has %d "
                    "GPU(s) visible: 'invalid device ordinal'. gpus_per_node must be %d for this "
                    "layout; the build/run stages set it for the version in the image."
                    % (rank, host, dev, rank, gpus_per_node, host, gpus, gpus))
    return problems
