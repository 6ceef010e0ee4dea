"""TEST DOUBLE of examples/chatglm/build.py of TensorRT-LLM 0.7.x (see ../../README.md).

Same options/choices/required flags and asserts; writes the legacy layout:
config.json (builder_config, plugin_config, no "version"), one
<model_name>_<dtype>_tp<world>[_pp<pp>]_rank<r>.engine per rank and the timing
cache (model.cache) in the working directory.
"""
import argparse
import json
from pathlib import Path

from tensorrt_llm._double import torch

MODEL_NAMES = ['chatglm_6b', 'chatglm2_6b', 'chatglm2_6b_32k', 'chatglm3_6b',
               'chatglm3_6b_base', 'chatglm3_6b_32k', 'glm_10b']
PLUGIN_DTYPES = ['float32', 'float16', 'bfloat16', False]


def parse_arguments():
    parser = argparse.ArgumentParser()
    parser.add_argument('--model_name', '-m', type=str, required=True, choices=MODEL_NAMES)
    parser.add_argument('--gpus_per_node', type=int, default=8)
    parser.add_argument('--world_size', '-ws', type=int, default=1)
    parser.add_argument('--tp_size', '-tp', type=int, default=1)
    parser.add_argument('--pp_size', '-pp', type=int, default=1)
    parser.add_argument('--model_dir', '-i', type=Path, default=None)
    parser.add_argument('--output_dir', '-o', type=Path, default='engine_outputs')
    parser.add_argument('--dtype', type=str, default='float16',
                        choices=['float32', 'float16', 'bfloat16'])
    parser.add_argument('--logits_dtype', type=str, default='float32', choices=['float16', 'float32'])
    parser.add_argument('--strongly_typed', default=False, action='store_true')
    parser.add_argument('--timing_cache', type=str, default='model.cache')
    parser.add_argument('--log_level', '-l', type=str, default='verbose',
                        choices=['verbose', 'info', 'warning', 'error', 'internal_error'])
    parser.add_argument('--parallel_build', default=False, action='store_true')
    parser.add_argument('--max_batch_size', type=int, default=8)
    parser.add_argument('--max_input_len', type=int, default=1024)
    parser.add_argument('--max_output_len', type=int, default=1024)
    parser.add_argument('--max_beam_width', type=int, default=1)
    parser.add_argument('--max_num_tokens', type=int, default=None)
    for plugin, default in (('--use_gpt_attention_plugin', 'float16'), ('--use_gemm_plugin', 'float16'),
                            ('--use_layernorm_plugin', False), ('--use_rmsnorm_plugin', False)):
        parser.add_argument(plugin, nargs='?', const='float16', default=default, choices=PLUGIN_DTYPES)
    for flag in ('--enable_context_fmha', '--enable_context_fmha_fp32_acc', '--multi_block_mode',
                 '--use_custom_all_reduce', '--remove_input_padding', '--paged_kv_cache',
                 '--use_inflight_batching', '--use_weight_only', '--use_smooth_quant',
                 '--int8_kv_cache'):
        parser.add_argument(flag, default=False, action='store_true')
    parser.add_argument('--tokens_per_block', type=int, default=128)
    parser.add_argument('--weight_only_precision', const='int8', type=str, nargs='?',
                        default='int8', choices=['int8', 'int4', 'int4_awq'])
    args = parser.parse_args()
    assert args.world_size == args.tp_size * args.pp_size  # only TP is supported now
    return args


def main():
    args = parse_arguments()
    with open(args.model_dir / "config.json") as handle:   # the real one reads it too
        json.load(handle)
    torch.cuda.set_device(0 % args.gpus_per_node)
    quant_mode = 0
    if args.use_weight_only:
        quant_mode = 1 if 'int4' in args.weight_only_precision else 2
    args.output_dir.mkdir(parents=True, exist_ok=True)
    Path(args.timing_cache).write_bytes(b"double timing cache\n")
    config = {
        "builder_config": {
            "name": args.model_name, "precision": args.dtype, "tensor_parallel": args.tp_size,
            "pipeline_parallel": args.pp_size, "quant_mode": quant_mode,
            "max_batch_size": args.max_batch_size, "max_input_len": args.max_input_len,
            "max_output_len": args.max_output_len, "max_beam_width": args.max_beam_width,
        },
        "plugin_config": {"gpt_attention_plugin": args.use_gpt_attention_plugin,
                          "gemm_plugin": args.use_gemm_plugin,
                          "use_custom_all_reduce": args.use_custom_all_reduce},
    }
    (args.output_dir / "config.json").write_text(json.dumps(config, indent=4))
    pp_part = "_pp%d" % args.pp_size if args.pp_size > 1 else ""
    for rank in range(args.world_size):
        name = "%s_%s_tp%d%s_rank%d.engine" % (args.model_name, args.dtype, args.world_size,
                                               pp_part, rank)
        (args.output_dir / name).write_bytes(b"double engine rank %d\n" % rank)


if __name__ == '__main__':
    main()
