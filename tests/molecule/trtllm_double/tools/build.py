# SPDX-License-Identifier: Apache-2.0
"""TEST DOUBLE of examples/<family>/build.py of TensorRT-LLM 0.7.1 (see ../README.md).

Options, choices and post-parse asserts come from the recorded table of the family's build.py.
Writes the legacy layout: config.json (builder_config, plugin_config, no "version"), one rank file
per rank named as that build.py names it, and the timing cache (model.cache) in the working dir.
"""
import json
import os
import sys
from pathlib import Path

from tensorrt_llm._double import parse, set_device

FAMILY = os.path.basename(os.path.dirname(os.path.abspath(__file__)))
MODEL_NAME = {"llama": "llama", "qwen": "qwen", "gpt": "gpt"}   # chatglm: --model_name


def main():
    args = parse("build.py:" + FAMILY)
    model_dir = getattr(args, "model_dir", None) or getattr(args, "hf_model_dir", None)
    with open(os.path.join(str(model_dir), "config.json")) as handle:   # the real one reads it too
        hf = json.load(handle)
    tp, pp = args.tp_size, args.pp_size
    if hf.get("num_layers", 1) % pp:
        sys.stderr.write("AssertionError: num_layers %d is not a multiple of pp_size %d\n"
                         % (hf["num_layers"], pp))
        sys.exit(1)
    name = args.model_name if FAMILY == "chatglm" else MODEL_NAME[FAMILY]
    quant_mode = 0
    if args.use_weight_only:
        quant_mode = 1 if "int4" in args.weight_only_precision else 2
    out = Path(str(args.output_dir))
    out.mkdir(parents=True, exist_ok=True)
    Path(args.timing_cache).write_bytes(b"double timing cache\n")
    config = {
        "builder_config": {
            "name": name, "precision": args.dtype, "tensor_parallel": tp, "pipeline_parallel": pp,
            "quant_mode": quant_mode, "max_batch_size": args.max_batch_size,
            "max_input_len": args.max_input_len, "max_output_len": args.max_output_len,
            "max_beam_width": args.max_beam_width},
        "plugin_config": {"gpt_attention_plugin": args.use_gpt_attention_plugin,
                          "gemm_plugin": args.use_gemm_plugin},
    }
    (out / "config.json").write_text(json.dumps(config, indent=4))
    pp_part = "_pp%d" % pp if pp > 1 else ""
    name_tp = args.world_size if FAMILY == "chatglm" else tp   # chatglm names files by world_size
    for rank in range(args.world_size):
        set_device(rank % args.gpus_per_node)   # each rank is built on GPU rank % gpus_per_node
        (out / ("%s_%s_tp%d%s_rank%d.engine" % (name, args.dtype, name_tp, pp_part, rank))).write_bytes(
            b"double engine rank %d\n" % rank)


if __name__ == '__main__':
    main()
