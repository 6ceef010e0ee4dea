# SPDX-License-Identifier: Apache-2.0
"""The model repository of one Triton server: the TensorRT-LLM ensemble, written by us.

Plain Python (no Ansible imports, no I/O). ``repository_files(spec)`` returns
``{relative path: text}`` for the four models of the TensorRT-LLM backend's
``inflight_batcher_llm`` layout - ``preprocessing`` (tokenizer, Python), ``tensorrt_llm`` (the
engine: backend ``tensorrtllm``, the C++ backend, or ``python``, a ``model.py`` of the model
sources), ``postprocessing`` (detokenizer, Python) and ``ensemble`` (the pipeline clients
call) - each a ``config.pbtxt`` generated here, never filled from a template.

The tensor names, types and shapes are those of tensorrtllm_backend v0.14.0
(commit 9958c21167e1, the release built on Triton 24.10 = server 2.51.0) and hold from v0.13
to v0.19; the parameter keys are the backend's own (``gpt_model_path``, ``gpt_model_type``,
``gpu_device_ids``, ``participant_ids``, ...). Keys the backend would otherwise read as
placeholders are left out, which it treats as "not set" (facts: docs/serving.md).
"""

from __future__ import annotations

import hashlib
import json

BATCHING_STRATEGIES = ("inflight_fused_batching", "inflight_batching", "V1")
BACKENDS = ("tensorrtllm", "python")
ENGINE_MODEL = "tensorrt_llm"
MODELS = ("preprocessing", ENGINE_MODEL, "postprocessing", "ensemble")
DEFAULT_WORKER = "/opt/tritonserver/backends/tensorrtllm/trtllmExecutorWorker"


class Enum(str):
    """A protobuf enum value: written bare (``TYPE_INT32``), not quoted."""


def _scalar(value):
    if isinstance(value, Enum):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"%s"' % text


def pbtxt(fields, indent=0):
    """Protobuf text format of ``fields`` (a list of ``(name, value)`` pairs, in order).

    A value that is a list of pairs is a message (``name { ... }``); a list of such messages
    is a repeated message field in list form (``name [ {...}, {...} ]``); any other list is a
    repeated scalar (``name: [ 1, 2 ]``).
    """
    pad = "  " * indent
    out = []
    for name, value in fields:
        if _is_message(value):
            out.append("%s%s {\n%s%s}\n" % (pad, name, pbtxt(value, indent + 1), pad))
        elif isinstance(value, list) and value and all(_is_message(v) for v in value):
            items = ",\n".join("%s  {\n%s%s  }" % (pad, pbtxt(v, indent + 2), pad) for v in value)
            out.append("%s%s [\n%s\n%s]\n" % (pad, name, items, pad))
        elif isinstance(value, list):
            items = ", ".join(_scalar(v) for v in value)
            out.append("%s%s: [ %s]\n" % (pad, name, items + " " if items else ""))
        else:
            out.append("%s%s: %s\n" % (pad, name, _scalar(value)))
    return "".join(out)


def _is_message(value):
    return isinstance(value, list) and bool(value) and all(
        isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], str) for v in value)


# --- tensors (tensorrtllm_backend v0.14.0) ----------------------------------------------------
# (name, data type, dims, flags): o = optional, r = reshape to a scalar, g = allow_ragged_batch.
PRE_INPUTS = (
    ("QUERY", "STRING", [1], ""), ("DECODER_QUERY", "STRING", [1], "o"),
    ("REQUEST_OUTPUT_LEN", "INT32", [1], ""), ("BAD_WORDS_DICT", "STRING", [-1], "o"),
    ("STOP_WORDS_DICT", "STRING", [-1], "o"), ("EMBEDDING_BIAS_WORDS", "STRING", [-1], "o"),
    ("EMBEDDING_BIAS_WEIGHTS", "FP32", [-1], "o"), ("END_ID", "INT32", [1], "o"),
    ("PAD_ID", "INT32", [1], "o"), ("PROMPT_TABLE_EXTRA_ID", "UINT64", [1], "o"),
)
PRE_OUTPUTS = (
    ("INPUT_ID", "INT32", [-1], ""), ("REQUEST_INPUT_LEN", "INT32", [1], ""),
    ("DECODER_INPUT_ID", "INT32", [-1], ""), ("REQUEST_DECODER_INPUT_LEN", "INT32", [1], ""),
    ("BAD_WORDS_IDS", "INT32", [2, -1], ""), ("STOP_WORDS_IDS", "INT32", [2, -1], ""),
    ("EMBEDDING_BIAS", "FP32", [-1], ""), ("REQUEST_OUTPUT_LEN", "INT32", [-1], ""),
    ("OUT_END_ID", "INT32", [1], ""), ("OUT_PAD_ID", "INT32", [1], ""),
    ("OUT_PROMPT_TABLE_EXTRA_IDS", "UINT64", [-1], ""),
)
ENGINE_INPUTS = (
    ("input_ids", "INT32", [-1], "g"), ("input_lengths", "INT32", [1], "r"),
    ("request_output_len", "INT32", [1], "r"), ("num_return_sequences", "INT32", [1], "ro"),
    ("draft_input_ids", "INT32", [-1], "og"), ("decoder_input_ids", "INT32", [-1], "og"),
    ("decoder_input_lengths", "INT32", [1], "or"), ("draft_logits", "FP32", [-1, -1], "og"),
    ("draft_acceptance_threshold", "FP32", [1], "ro"), ("end_id", "INT32", [1], "ro"),
    ("pad_id", "INT32", [1], "ro"), ("stop_words_list", "INT32", [2, -1], "og"),
    ("bad_words_list", "INT32", [2, -1], "og"), ("embedding_bias", "FP32", [-1], "og"),
    ("beam_width", "INT32", [1], "ro"), ("temperature", "FP32", [1], "ro"),
    ("runtime_top_k", "INT32", [1], "ro"), ("runtime_top_p", "FP32", [1], "ro"),
    ("runtime_top_p_min", "FP32", [1], "ro"), ("runtime_top_p_decay", "FP32", [1], "ro"),
    ("runtime_top_p_reset_ids", "INT32", [1], "ro"), ("len_penalty", "FP32", [1], "ro"),
    ("early_stopping", "BOOL", [1], "ro"), ("repetition_penalty", "FP32", [1], "ro"),
    ("min_length", "INT32", [1], "ro"), ("beam_search_diversity_rate", "FP32", [1], "ro"),
    ("presence_penalty", "FP32", [1], "ro"), ("frequency_penalty", "FP32", [1], "ro"),
    ("random_seed", "UINT64", [1], "ro"), ("return_log_probs", "BOOL", [1], "ro"),
    ("return_context_logits", "BOOL", [1], "ro"), ("return_generation_logits", "BOOL", [1], "ro"),
    ("exclude_input_in_output", "BOOL", [1], "ro"), ("stop", "BOOL", [1], "ro"),
    ("streaming", "BOOL", [1], "ro"), ("prompt_embedding_table", "FP16", [-1, -1], "og"),
    ("prompt_table_extra_ids", "UINT64", [-1], "og"), ("prompt_vocab_size", "INT32", [1], "ro"),
    ("lora_task_id", "UINT64", [1], "ro"), ("lora_weights", "FP16", [-1, -1], "og"),
    ("lora_config", "INT32", [-1, 3], "og"), ("context_phase_params", "UINT8", [-1], "og"),
)
ENGINE_OUTPUTS = (
    ("output_ids", "INT32", [-1, -1], ""), ("sequence_length", "INT32", [-1], ""),
    ("cum_log_probs", "FP32", [-1], ""), ("output_log_probs", "FP32", [-1, -1], ""),
    ("context_logits", "FP32", [-1, -1], ""), ("generation_logits", "FP32", [-1, -1, -1], ""),
    ("batch_index", "INT32", [1], ""), ("sequence_index", "INT32", [1], ""),
    ("context_phase_params", "UINT8", [-1], ""),
)
POST_INPUTS = (("TOKENS_BATCH", "INT32", [-1, -1], ""), ("SEQUENCE_LENGTH", "INT32", [-1], ""))
POST_OUTPUTS = (("OUTPUT", "STRING", [-1], ""),)
ENSEMBLE_INPUTS = (
    ("text_input", "STRING", [1], ""), ("decoder_text_input", "STRING", [1], "o"),
    ("max_tokens", "INT32", [1], ""), ("num_return_sequences", "INT32", [1], "o"),
    ("bad_words", "STRING", [-1], "o"), ("stop_words", "STRING", [-1], "o"),
    ("end_id", "INT32", [1], "o"), ("pad_id", "INT32", [1], "o"), ("top_k", "INT32", [1], "o"),
    ("top_p", "FP32", [1], "o"), ("temperature", "FP32", [1], "o"), ("length_penalty", "FP32", [1], "o"),
    ("repetition_penalty", "FP32", [1], "o"), ("min_length", "INT32", [1], "o"),
    ("presence_penalty", "FP32", [1], "o"), ("frequency_penalty", "FP32", [1], "o"),
    ("random_seed", "UINT64", [1], "o"), ("return_log_probs", "BOOL", [1], "o"),
    ("return_context_logits", "BOOL", [1], "o"), ("return_generation_logits", "BOOL", [1], "o"),
    ("beam_width", "INT32", [1], "o"), ("stream", "BOOL", [1], "o"),
    ("prompt_embedding_table", "FP16", [-1, -1], "o"), ("prompt_table_extra_id", "UINT64", [1], "o"),
    ("prompt_vocab_size", "INT32", [1], "o"), ("embedding_bias_words", "STRING", [-1], "o"),
    ("embedding_bias_weights", "FP32", [-1], "o"),
)
ENSEMBLE_OUTPUTS = (
    ("text_output", "STRING", [-1], ""), ("cum_log_probs", "FP32", [-1], ""),
    ("output_log_probs", "FP32", [-1, -1], ""), ("context_logits", "FP32", [-1, -1], ""),
    ("generation_logits", "FP32", [-1, -1, -1], ""), ("batch_index", "INT32", [1], ""),
    ("sequence_index", "INT32", [1], ""),
)
# The ensemble's steps: (model, {model input: ensemble tensor}, {model output: ensemble tensor}).
ENSEMBLE_STEPS = (
    ("preprocessing",
     (("QUERY", "text_input"), ("DECODER_QUERY", "decoder_text_input"), ("REQUEST_OUTPUT_LEN", "max_tokens"),
      ("BAD_WORDS_DICT", "bad_words"), ("STOP_WORDS_DICT", "stop_words"),
      ("EMBEDDING_BIAS_WORDS", "embedding_bias_words"), ("EMBEDDING_BIAS_WEIGHTS", "embedding_bias_weights"),
      ("END_ID", "end_id"), ("PAD_ID", "pad_id"), ("PROMPT_TABLE_EXTRA_ID", "prompt_table_extra_id")),
     (("REQUEST_INPUT_LEN", "_REQUEST_INPUT_LEN"), ("INPUT_ID", "_INPUT_ID"),
      ("REQUEST_DECODER_INPUT_LEN", "_REQUEST_DECODER_INPUT_LEN"), ("DECODER_INPUT_ID", "_DECODER_INPUT_ID"),
      ("REQUEST_OUTPUT_LEN", "_REQUEST_OUTPUT_LEN"), ("STOP_WORDS_IDS", "_STOP_WORDS_IDS"),
      ("BAD_WORDS_IDS", "_BAD_WORDS_IDS"), ("EMBEDDING_BIAS", "_EMBEDDING_BIAS"),
      ("OUT_END_ID", "_PREPROCESSOR_END_ID"), ("OUT_PAD_ID", "_PREPROCESSOR_PAD_ID"),
      ("OUT_PROMPT_TABLE_EXTRA_IDS", "_OUT_PROMPT_TABLE_EXTRA_IDS"))),
    (ENGINE_MODEL,
     (("input_ids", "_INPUT_ID"), ("decoder_input_ids", "_DECODER_INPUT_ID"),
      ("input_lengths", "_REQUEST_INPUT_LEN"), ("decoder_input_lengths", "_REQUEST_DECODER_INPUT_LEN"),
      ("request_output_len", "_REQUEST_OUTPUT_LEN"), ("end_id", "_PREPROCESSOR_END_ID"),
      ("pad_id", "_PREPROCESSOR_PAD_ID"), ("embedding_bias", "_EMBEDDING_BIAS"), ("runtime_top_k", "top_k"),
      ("runtime_top_p", "top_p"), ("temperature", "temperature"), ("len_penalty", "length_penalty"),
      ("repetition_penalty", "repetition_penalty"), ("min_length", "min_length"),
      ("presence_penalty", "presence_penalty"), ("frequency_penalty", "frequency_penalty"),
      ("random_seed", "random_seed"), ("return_log_probs", "return_log_probs"),
      ("return_context_logits", "return_context_logits"), ("return_generation_logits", "return_generation_logits"),
      ("num_return_sequences", "num_return_sequences"), ("beam_width", "beam_width"), ("streaming", "stream"),
      ("prompt_embedding_table", "prompt_embedding_table"), ("prompt_vocab_size", "prompt_vocab_size"),
      ("stop_words_list", "_STOP_WORDS_IDS"), ("bad_words_list", "_BAD_WORDS_IDS"),
      ("prompt_table_extra_ids", "_OUT_PROMPT_TABLE_EXTRA_IDS")),
     (("output_ids", "_TOKENS_BATCH"), ("sequence_length", "_SEQUENCE_LENGTH"), ("cum_log_probs", "cum_log_probs"),
      ("output_log_probs", "output_log_probs"), ("context_logits", "context_logits"),
      ("generation_logits", "generation_logits"), ("batch_index", "batch_index"),
      ("sequence_index", "sequence_index"))),
    ("postprocessing",
     (("TOKENS_BATCH", "_TOKENS_BATCH"), ("SEQUENCE_LENGTH", "_SEQUENCE_LENGTH")),
     (("OUTPUT", "text_output"),)),
)


def _tensors(table):
    out = []
    for name, dtype, dims, flags in table:
        fields = [("name", name), ("data_type", Enum("TYPE_" + dtype)), ("dims", list(dims))]
        if "r" in flags:
            fields.append(("reshape", [("shape", [])]))
        if "o" in flags:
            fields.append(("optional", True))
        if "g" in flags:
            fields.append(("allow_ragged_batch", True))
        out.append(fields)
    return out


def _parameters(params):
    """``parameters`` entries (the backend reads every value as a string)."""
    return [[("key", key), ("value", [("string_value", _param_text(value))])] for key, value in params]


def _param_text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def id_sets(sets):
    """``[[0, 1], [2, 3]]`` -> ``"0,1;2,3"`` (the backend's format for gpu_device_ids and participant_ids)."""
    return ";".join(",".join(str(int(i)) for i in ids) for ids in sets)


def engine_config(spec):
    """config.pbtxt of the engine's model (``tensorrt_llm``).

    ``spec``: backend, max_batch_size, decoupled, max_queue_delay_us, engine_dir,
    batching_strategy, max_beam_width, exclude_input_in_output, instance_count, and optional
    gpu_device_ids (list, or list of lists for several instances), participant_ids (list of
    lists), executor_worker_path (orchestrator), parameters (extra key -> value).
    """
    mbs = int(spec["max_batch_size"])
    params = [("max_beam_width", int(spec.get("max_beam_width", 1))),
              ("FORCE_CPU_ONLY_INPUT_TENSORS", "no"),
              ("gpt_model_type", spec.get("batching_strategy", "inflight_fused_batching")),
              ("gpt_model_path", spec["engine_dir"]),
              ("exclude_input_in_output", bool(spec.get("exclude_input_in_output", True)))]
    gpus = spec.get("gpu_device_ids")
    if gpus:
        params.append(("gpu_device_ids", id_sets(gpus if isinstance(gpus[0], list) else [gpus])))
    if spec.get("participant_ids"):
        params.append(("participant_ids", id_sets(spec["participant_ids"])))
    if spec.get("executor_worker_path"):
        params.append(("executor_worker_path", spec["executor_worker_path"]))
    extra = dict(spec.get("parameters") or {})
    params = [(k, extra.pop(k, v)) for k, v in params] + [(k, extra[k]) for k in sorted(extra)]
    fields = [
        ("name", ENGINE_MODEL),
        ("backend", spec["backend"]),
        ("max_batch_size", mbs),
        ("model_transaction_policy", [("decoupled", bool(spec.get("decoupled", False)))]),
        ("dynamic_batching", [("preferred_batch_size", [mbs]),
                              ("max_queue_delay_microseconds", int(spec.get("max_queue_delay_us", 0)))]),
        ("input", _tensors(ENGINE_INPUTS)),
        ("output", _tensors(ENGINE_OUTPUTS)),
        ("instance_group", [[("count", int(spec.get("instance_count", 1))), ("kind", Enum("KIND_CPU"))]]),
        ("parameters", _parameters(params)),
    ]
    return _header("the engine (tensorrt_llm)") + pbtxt(fields)


def preprocessing_config(spec):
    """config.pbtxt of ``preprocessing`` (the tokenizer; Python backend)."""
    fields = [
        ("name", "preprocessing"), ("backend", "python"), ("max_batch_size", int(spec["max_batch_size"])),
        ("input", _tensors(PRE_INPUTS)), ("output", _tensors(PRE_OUTPUTS)),
        ("parameters", _parameters([("tokenizer_dir", spec["tokenizer_dir"]),
                                    ("add_special_tokens", bool(spec.get("add_special_tokens", True))),
                                    ("visual_model_path", ""),
                                    ("gpt_model_path", spec["engine_dir"])])),
        ("instance_group", [[("count", int(spec.get("preprocessing_instances", 1))), ("kind", Enum("KIND_CPU"))]]),
    ]
    return _header("the tokenizer (preprocessing)") + pbtxt(fields)


def postprocessing_config(spec):
    """config.pbtxt of ``postprocessing`` (the detokenizer; Python backend)."""
    fields = [
        ("name", "postprocessing"), ("backend", "python"), ("max_batch_size", int(spec["max_batch_size"])),
        ("input", _tensors(POST_INPUTS)), ("output", _tensors(POST_OUTPUTS)),
        ("parameters", _parameters([("tokenizer_dir", spec["tokenizer_dir"]),
                                    ("skip_special_tokens", bool(spec.get("skip_special_tokens", True)))])),
        ("instance_group", [[("count", int(spec.get("postprocessing_instances", 1))), ("kind", Enum("KIND_CPU"))]]),
    ]
    return _header("the detokenizer (postprocessing)") + pbtxt(fields)


def ensemble_config(spec):
    """config.pbtxt of ``ensemble``: preprocessing -> tensorrt_llm -> postprocessing."""
    steps = []
    for model, inputs, outputs in ENSEMBLE_STEPS:
        step = [("model_name", model), ("model_version", -1)]
        step += [("input_map", [("key", k), ("value", v)]) for k, v in inputs]
        step += [("output_map", [("key", k), ("value", v)]) for k, v in outputs]
        steps.append(step)
    fields = [
        ("name", "ensemble"), ("platform", "ensemble"), ("max_batch_size", int(spec["max_batch_size"])),
        ("input", _tensors(ENSEMBLE_INPUTS)), ("output", _tensors(ENSEMBLE_OUTPUTS)),
        ("ensemble_scheduling", [("step", steps)]),
    ]
    return _header("the pipeline clients call (ensemble)") + pbtxt(fields)


def _header(what):
    return ("# config.pbtxt of %s, written by mpi-trt-ansible (roles/triton_serve); rewritten on every\n"
            "# change of the serving settings. Tensors: tensorrtllm_backend v0.14.0 inflight_batcher_llm.\n" % what)


def repository_files(spec):
    """``{path: text}`` of the four config.pbtxt files (model code is copied beside them)."""
    if spec["backend"] not in BACKENDS:
        raise ValueError("backend %r is not one of %s" % (spec["backend"], ", ".join(BACKENDS)))
    if spec.get("batching_strategy", "inflight_fused_batching") not in BATCHING_STRATEGIES:
        raise ValueError("batching strategy %r is not one of %s"
                         % (spec["batching_strategy"], ", ".join(BATCHING_STRATEGIES)))
    return {
        "preprocessing/config.pbtxt": preprocessing_config(spec),
        ENGINE_MODEL + "/config.pbtxt": engine_config(spec),
        "postprocessing/config.pbtxt": postprocessing_config(spec),
        "ensemble/config.pbtxt": ensemble_config(spec),
    }


def code_models(backend):
    """Models whose ``1/`` directory comes from the model sources (Python models)."""
    return ("preprocessing", ENGINE_MODEL, "postprocessing") if backend == "python" else (
        "preprocessing", "postprocessing")


def digest(files):
    """sha256 of a ``{path: bytes or text}`` mapping (order-independent)."""
    h = hashlib.sha256()
    for path in sorted(files):
        data = files[path]
        h.update(path.encode() + b"\0")
        h.update(data if isinstance(data, bytes) else data.encode())
        h.update(b"\0")
    return h.hexdigest()


def engine_parallelism(config_text):
    """``(tp, pp)`` of an engine's config.json (trtllm-build and legacy build.py forms); None if unknown."""
    try:
        cfg = json.loads(config_text)
    except ValueError:
        return None
    mapping = (cfg.get("pretrained_config") or {}).get("mapping") or {}
    if "tp_size" in mapping:
        return int(mapping.get("tp_size", 1)), int(mapping.get("pp_size", 1))
    builder = cfg.get("builder_config") or {}
    if "tensor_parallel" in builder:
        return int(builder.get("tensor_parallel", 1)), int(builder.get("pipeline_parallel", 1))
    return None
