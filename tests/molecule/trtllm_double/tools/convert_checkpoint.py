# SPDX-License-Identifier: Apache-2.0
"""TEST DOUBLE of the family's convert_checkpoint.py (0.9.0, 1.2; see ../README.md).

Options, choices and post-parse asserts come from the recorded table of the family's converter
(chatglm, llama, gpt, qwen; the directory it is installed in names the family). Writes
CKPT_DIR/config.json (architecture, dtype, mapping, quantization) and rank<r>.safetensors for every
rank.
"""
import json
import os

from tensorrt_llm._double import parse, vtuple

_DIR = os.path.basename(os.path.dirname(os.path.abspath(__file__)))
FAMILY = {"glm-4-9b": "chatglm"}.get(_DIR, _DIR)
ARCHITECTURE = {"chatglm": "ChatGLMForCausalLM", "llama": "LlamaForCausalLM", "gpt": "GPTForCausalLM",
                "qwen": "QWenForCausalLM"}


def main():
    args = parse("convert_checkpoint.py:" + FAMILY)
    with open(os.path.join(args.model_dir, "config.json")) as handle:
        hf = json.load(handle)
    world = args.tp_size * args.pp_size
    algo = None
    if args.use_weight_only:
        algo = "W8A16" if args.weight_only_precision == "int8" else "W4A16"
    mapping = {"world_size": world, "tp_size": args.tp_size, "pp_size": args.pp_size}
    if vtuple() >= (1, 0):
        mapping["gpus_per_node"] = 8
    dtype = hf.get("torch_dtype", "float16") if args.dtype == "auto" else args.dtype
    os.makedirs(args.output_dir, exist_ok=True)
    config = {"architecture": ARCHITECTURE[FAMILY], "dtype": dtype, "mapping": mapping,
              "num_hidden_layers": hf.get("num_layers", 2),
              "quantization": {"quant_algo": algo, "kv_cache_quant_algo": None}}
    with open(os.path.join(args.output_dir, "config.json"), "w") as handle:
        json.dump(config, handle, indent=4)
    for rank in range(world):
        with open(os.path.join(args.output_dir, "rank%d.safetensors" % rank), "wb") as handle:
            handle.write(b"double weights rank %d\n" % rank)


if __name__ == '__main__':
    main()
