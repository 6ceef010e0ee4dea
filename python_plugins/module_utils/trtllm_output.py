# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""Parsers for TensorRT-LLM's examples/run.py output and engine config.json.

Plain Python: text or dicts in, dicts out; no Ansible imports, no I/O.

run.py (rank 0 only) prints, per prompt i and beam b::

    Input [Text 0]: "Hello"
    Output [Text 0 Beam 0]: " Huawei is ..."

(``Output [Text i Seq s Beam b]`` in recent versions). Texts are decoded,
unescaped tokens: they may hold quotes and newlines, so a record runs until
the next record line, a log/banner/profiling line, or the end. Every rank of
0.8+ prints ``[TensorRT-LLM] TensorRT-LLM version: X`` (early 0.8 builds
without a newline, so the next output is glued to it), and with
--run_profiling every rank prints ``batch_size: N, avg latency of K
iterations: : S sec``. run.py prints no token counts: ``token_count`` stays
null.
"""

from __future__ import annotations

import re

from ansible.module_utils.mtrt_rules import world_size
from ansible.module_utils.trtllm_command import expected_engine_files

_INPUT = re.compile(r'^Input \[Text (\d+)\]: "(.*)$', re.S)
_OUTPUT = re.compile(r'^Output \[Text (\d+)(?: Seq (\d+))? Beam (\d+)\]: "(.*)$', re.S)
_RECORD_LIKE = re.compile(r"^(Input|Output) \[Text")
_BANNER = re.compile(
    r"^\[TensorRT-LLM\] TensorRT[- ]LLM version: "
    r"(\d+\.\d+(?:\.\d+)?(?:(?:\.|-)?(?:dev|rc|post|a|b)\d+)*(?:\+[0-9A-Za-z.]+)?)")
_PROFILE = re.compile(
    r"^batch_size: (\d+), avg latency of (\d+) iterations: : ([0-9.eE+\-]+) sec\s*$")
_LOG = re.compile(
    r"^(?:\[\d\d/\d\d/\d{4}-\d\d:\d\d:\d\d\] )?"
    r"(?:\[TensorRT-LLM\]\[[A-Z]+\]|\[TRT-LLM\] \[[A-Z]\]|\[TRT\] \[[A-Z]\])")


def _split_banners(line, banners):
    """Strip leading version banners (glued or not); return the rest."""
    while True:
        match = _BANNER.match(line)
        if not match:
            return line
        banners.append(match.group(1))
        line = line[match.end():]


def _close(record, warnings):
    text = record["lines"]
    joined = "".join(text).rstrip("\r\n")
    if joined.endswith('"'):
        joined = joined[:-1]
    else:
        warnings.append("%s: text is not closed by a quote (output cut off?)" % record["label"])
    record["text"] = joined


def parse_run_output(stdout):
    """Parse run.py stdout. Returns dict(prompts, profiling, latency_s,
    throughput_prompts_per_s, versions, streaming_updates, warnings)."""
    warnings, banners, profiling, records = [], [], [], []
    current = None
    for lineno, raw in enumerate((stdout or "").splitlines(True), 1):
        seen = len(banners)
        line = _split_banners(raw, banners)
        if len(banners) > seen and current is not None:
            _close(current, warnings)  # a banner never belongs to a text
            current = None
        if not line.strip():
            if current is not None and line:
                current["lines"].append(line)
            continue
        inp, out = _INPUT.match(line), _OUTPUT.match(line)
        if inp or out:
            if current is not None:
                _close(current, warnings)
            if inp:
                current = {"kind": "input", "index": int(inp.group(1)), "lines": [inp.group(2)],
                           "label": "Input [Text %s]" % inp.group(1)}
            else:
                seq = int(out.group(2)) if out.group(2) is not None else None
                current = {"kind": "output", "index": int(out.group(1)), "seq": seq,
                           "beam": int(out.group(3)), "lines": [out.group(4)],
                           "label": "Output [Text %s%s Beam %s]" % (
                               out.group(1), "" if seq is None else " Seq %d" % seq, out.group(3))}
            records.append(current)
            continue
        prof, log = _PROFILE.match(line), _LOG.match(line)
        if prof or log or _RECORD_LIKE.match(line):
            if current is not None:
                _close(current, warnings)
                current = None
            if prof:
                profiling.append({"batch_size": int(prof.group(1)), "iterations": int(prof.group(2)),
                                  "latency_s": float(prof.group(3))})
            elif not log:
                warnings.append("line %d: malformed record %r" % (lineno, line.rstrip("\r\n")[:120]))
            continue
        if current is not None:
            current["lines"].append(line)
    if current is not None:
        _close(current, warnings)
    return _assemble(records, profiling, banners, warnings)


def _assemble(records, profiling, banners, warnings):
    prompts, updates = {}, 0
    for rec in records:
        prompt = prompts.setdefault(rec["index"], {"index": rec["index"], "input_text": None,
                                                   "outputs": {}})
        if rec["kind"] == "input":
            if prompt["input_text"] is not None:
                updates += 1
            prompt["input_text"] = rec["text"]
        else:
            key = (rec["seq"] or 0, rec["beam"])
            if key in prompt["outputs"]:
                updates += 1  # --streaming repeats the blocks as the text grows
            prompt["outputs"][key] = {"seq": rec["seq"], "beam": rec["beam"], "text": rec["text"],
                                      "token_count": None}
    result = []
    for index in sorted(prompts):
        prompt = prompts[index]
        if prompt["input_text"] is None:
            warnings.append("Text %d: outputs without an 'Input [Text %d]' line" % (index, index))
        prompt["outputs"] = [prompt["outputs"][k] for k in sorted(prompt["outputs"])]
        prompt["output_token_count"] = None
        result.append(prompt)
    latency = max((p["latency_s"] for p in profiling), default=None)
    throughput = None
    if latency:
        batch = max(p["batch_size"] for p in profiling)
        throughput = round(batch / latency, 6)
    return {
        "prompts": result,
        "profiling": profiling,
        "latency_s": latency,
        "throughput_prompts_per_s": throughput,
        "tokens_per_s": None,
        "versions": sorted(set(banners)),
        "streaming_updates": updates,
        "warnings": warnings,
    }


# --------------------------------------------------------------------------- engine config

# QuantMode bits of 0.7.x (tensorrt_llm/quantization/mode.py).
_QM_INT4_WEIGHTS, _QM_INT8_WEIGHTS, _QM_ACTIVATIONS = 1, 2, 4
_QUANT_ALGO = {None: "none", "W8A16": "wo_int8", "W4A16": "wo_int4"}


def _legacy_quant(mode):
    mode = int(mode or 0)
    if mode == 0:
        return "none"
    if not mode & _QM_ACTIVATIONS and mode & _QM_INT8_WEIGHTS:
        return "wo_int8"
    if not mode & _QM_ACTIVATIONS and mode & _QM_INT4_WEIGHTS:
        return "wo_int4"
    return "quant_mode=%d" % mode


def parse_engine_config(config, present_files=()):
    """Engine metadata from config.json (dict) and the engine dir's file names.

    Returns dict(flow, version, name, architecture, dtype, quantization, tp,
    pp, world_size, gpus_per_node, max_batch_size, max_input_len,
    max_output_len, max_seq_len, max_beam_width, expected_files, missing_files, complete,
    problems). gpus_per_node is None when the engine does not record it (the
    runtime then uses 8).
    """
    present = set(present_files or ())
    meta = {"flow": None, "version": None, "name": None, "architecture": None, "dtype": None,
            "quantization": None, "tp": None, "pp": None, "world_size": None,
            "gpus_per_node": None, "max_batch_size": None, "max_input_len": None,
            "max_output_len": None, "max_seq_len": None, "max_beam_width": None,
            "expected_files": [],
            "missing_files": [], "complete": False, "problems": []}
    if not isinstance(config, dict):
        meta["problems"].append("config.json is not a JSON object")
        return meta
    if "version" in config or "pretrained_config" in config:
        pre = config.get("pretrained_config") or {}
        build = config.get("build_config") or {}
        mapping = pre.get("mapping") or {}
        quant = (pre.get("quantization") or {}).get("quant_algo")
        meta.update(flow="modern", version=config.get("version"),
                    architecture=pre.get("architecture"), dtype=pre.get("dtype"),
                    quantization=_QUANT_ALGO.get(quant, str(quant).lower()),
                    tp=mapping.get("tp_size", 1), pp=mapping.get("pp_size", 1),
                    world_size=mapping.get("world_size"),
                    gpus_per_node=mapping.get("gpus_per_node"))
        for key in ("max_batch_size", "max_input_len", "max_output_len", "max_seq_len",
                    "max_beam_width"):
            meta[key] = build.get(key)
    elif "builder_config" in config:
        bc = config["builder_config"]
        meta.update(flow="legacy", name=bc.get("name"), dtype=bc.get("precision"),
                    quantization=_legacy_quant(bc.get("quant_mode")),
                    tp=bc.get("tensor_parallel", 1), pp=bc.get("pipeline_parallel", 1))
        for key in ("max_batch_size", "max_input_len", "max_output_len", "max_beam_width"):
            meta[key] = bc.get(key)
    else:
        meta["problems"].append("config.json has neither 'pretrained_config' (trtllm-build) nor "
                                "'builder_config' (legacy build.py): not an engine config")
        return meta
    if meta["world_size"] is None:  # legacy engines do not record it
        meta["world_size"] = world_size(meta["tp"], meta["pp"])
    if meta["world_size"] != world_size(meta["tp"], meta["pp"]):
        meta["problems"].append("config.json mapping: world_size %s != tp_size %s x pp_size %s"
                                % (meta["world_size"], meta["tp"], meta["pp"]))
    meta["expected_files"] = expected_engine_files(meta["flow"], meta["tp"], meta["pp"],
                                                   meta["name"], meta["dtype"])
    meta["missing_files"] = [f for f in meta["expected_files"] if f not in present]
    if meta["missing_files"]:
        meta["problems"].append("rank engine files missing: %s" % ", ".join(meta["missing_files"]))
    meta["complete"] = not meta["problems"]
    return meta
