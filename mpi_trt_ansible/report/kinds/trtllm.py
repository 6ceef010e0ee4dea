# SPDX-License-Identifier: Apache-2.0
"""Sections of the TensorRT-LLM stages (80 trtllm_engine, 90 trtllm_inference)."""

from __future__ import annotations

from ..mdtext import code, fence
from . import renderer


@renderer("trtllm_engine_facts", title="TensorRT-LLM")
def trtllm_facts(data, where=None):
    if not data.get("present"):
        lines = ["TensorRT-LLM: not installed for `%s` (Python %s)." % (data.get("python"),
                                                                      data.get("python_version")), ""]
    else:
        lines = ["TensorRT-LLM %s (%s flow), %s, for `%s` (Python %s)." % (
            data.get("version"), data.get("flow") or "unknown",
            "supported" if data.get("supported") else "NOT supported", data.get("python"),
            data.get("python_version")), ""]
        tools = data.get("tools") or {}
        if tools:
            lines += ["Tools found: %s; missing: %s." % (
                ", ".join(k for k, v in tools.items() if v) or "none",
                ", ".join(k for k, v in tools.items() if not v) or "none"), ""]
    if data.get("reason"):
        lines += ["Reason: %s" % data["reason"], ""]
    fix = data.get("gpus_per_node_fix")
    if isinstance(fix, dict):
        lines += ["gpus_per_node %s: %s%s" % (fix.get("gpus_per_node"), fix.get("method"),
                                              " (%s)" % fix["reason"] if fix.get("reason") else ""), ""]
    return lines


@renderer("trtllm_engine_build", title="Engine")
def trtllm_build(data, where=None):
    if data.get("cache_hit"):
        how = "reused (cache hit)"
    elif data.get("would_build"):
        how = "would be built (check mode)"
    else:
        how = "built"
    lines = ["Engine %s: `%s` (%s s)." % (how, data.get("engine_dir"), data.get("duration_s")), ""]
    if data.get("inputs_hash"):
        lines += ["Inputs hash %s%s." % (code(data["inputs_hash"]),
                                         "; flow %s" % data["flow"] if data.get("flow") else ""), ""]
    if data.get("removed_stale"):
        lines += ["Removed stale: %s." % ", ".join(code(p) for p in data["removed_stale"]), ""]
    return lines


@renderer("trtllm_inference_run", title="Inference")
def trtllm_run(data, where=None):
    """Prompts with outputs; timings per prompt where given, else for the run."""
    timings = [fmt % data[key] for key, fmt in (("latency_s", "latency %s s"), ("tokens_per_s", "%s tokens/s"),
                                                 ("throughput_prompts_per_s", "%s prompts/s"))
               if data.get(key) is not None]
    lines = ["Whole run: %s." % ", ".join(timings), ""] if timings else []
    for prompt in data.get("prompts") or []:
        timing = ""
        if prompt.get("latency_s") is not None or prompt.get("tokens_per_s") is not None:
            timing = " (latency %s s, %s tokens/s)" % (prompt.get("latency_s"), prompt.get("tokens_per_s"))
        lines += ["**Prompt %s**%s" % (prompt.get("index"), timing), ""]
        lines += fence(prompt.get("input", prompt.get("input_text"))) + [""]
        for out in prompt.get("outputs") or []:
            tokens = out.get("tokens", out.get("token_count"))
            lines += ["Output (beam %s%s):" % (out.get("beam"), "" if tokens is None else ", %s tokens" % tokens), ""]
            lines += fence(out.get("text")) + [""]
    return lines
