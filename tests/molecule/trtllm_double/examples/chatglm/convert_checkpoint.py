"""TEST DOUBLE of examples/chatglm/convert_checkpoint.py (0.8+; see ../../README.md).

Writes CKPT_DIR/config.json (architecture, dtype, mapping, quantization) and
rank<r>.safetensors for every rank. No --gpus_per_node, as in the real one.
"""
import argparse
import json
import os


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--model_dir', type=str, default=None)
    parser.add_argument('--output_dir', type=str, default='tllm_checkpoint')
    parser.add_argument('--dtype', type=str, default='float16',
                        choices=['float32', 'bfloat16', 'float16'])
    parser.add_argument('--tp_size', type=int, default=1)
    parser.add_argument('--pp_size', type=int, default=1)
    parser.add_argument('--use_weight_only', default=False, action='store_true')
    parser.add_argument('--weight_only_precision', const='int8', type=str, nargs='?',
                        default='int8', choices=['int8', 'int4'])
    parser.add_argument('--workers', type=int, default=1)
    args = parser.parse_args()
    with open(os.path.join(args.model_dir, "config.json")) as handle:
        json.load(handle)
    world = args.tp_size * args.pp_size
    algo = None
    if args.use_weight_only:
        algo = "W8A16" if args.weight_only_precision == "int8" else "W4A16"
    os.makedirs(args.output_dir, exist_ok=True)
    config = {"architecture": "ChatGLMForCausalLM", "dtype": args.dtype,
              "mapping": {"world_size": world, "tp_size": args.tp_size, "pp_size": args.pp_size},
              "quantization": {"quant_algo": algo, "kv_cache_quant_algo": None}}
    with open(os.path.join(args.output_dir, "config.json"), "w") as handle:
        json.dump(config, handle, indent=4)
    for rank in range(world):
        with open(os.path.join(args.output_dir, "rank%d.safetensors" % rank), "wb") as handle:
            handle.write(b"double weights rank %d\n" % rank)


if __name__ == '__main__':
    main()
