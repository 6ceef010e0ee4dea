"""TEST DOUBLE of trtllm-build (tensorrt_llm.commands.build:main, 0.8+; see ../../README.md).

Options follow the installed version: --max_output_len before 0.11,
--max_seq_len and --gpus_per_node (written into the mapping) from 0.11,
--use_custom_all_reduce only in 0.8/0.9.
"""
import argparse
import json
import os

from tensorrt_llm._double import vtuple


def main():
    ver = vtuple()
    parser = argparse.ArgumentParser()
    parser.add_argument('--checkpoint_dir', type=str, default=None)
    parser.add_argument('--output_dir', type=str, default='engine_outputs')
    parser.add_argument('--max_batch_size', type=int, default=256)
    parser.add_argument('--max_input_len', type=int, default=1024)
    parser.add_argument('--max_beam_width', type=int, default=1)
    parser.add_argument('--max_num_tokens', type=int, default=None)
    parser.add_argument('--workers', type=int, default=1)
    parser.add_argument('--log_level', type=str, default='info')
    parser.add_argument('--gemm_plugin', type=str, default=None)
    parser.add_argument('--gpt_attention_plugin', type=str, default='auto')
    if ver >= (0, 11):
        parser.add_argument('--max_seq_len', type=int, default=None)
        parser.add_argument('--gpus_per_node', type=int, default=8)
    else:
        parser.add_argument('--max_output_len', type=int, default=1024)
    if (0, 8) <= ver < (0, 10):
        parser.add_argument('--use_custom_all_reduce', type=str, default='enable',
                            choices=['enable', 'disable'])
    args = parser.parse_args()
    with open(os.path.join(args.checkpoint_dir, "config.json")) as handle:
        pretrained = json.load(handle)
    world = pretrained["mapping"]["world_size"]
    for rank in range(world):
        open(os.path.join(args.checkpoint_dir, "rank%d.safetensors" % rank), "rb").close()
    if ver >= (0, 11):
        pretrained["mapping"]["gpus_per_node"] = args.gpus_per_node
    build = {"max_batch_size": args.max_batch_size, "max_input_len": args.max_input_len,
             "plugin_config": {"gemm_plugin": args.gemm_plugin,
                               "use_custom_all_reduce": getattr(args, "use_custom_all_reduce",
                                                                None) == "enable"}}
    if ver >= (0, 11):
        build["max_seq_len"] = args.max_seq_len
    else:
        build["max_output_len"] = args.max_output_len
    os.makedirs(args.output_dir, exist_ok=True)
    from importlib import metadata
    with open(os.path.join(args.output_dir, "config.json"), "w") as handle:
        json.dump({"version": metadata.version("tensorrt_llm"), "pretrained_config": pretrained,
                   "build_config": build}, handle, indent=4)
    for rank in range(world):
        with open(os.path.join(args.output_dir, "rank%d.engine" % rank), "wb") as handle:
            handle.write(b"double engine rank %d\n" % rank)


if __name__ == '__main__':
    main()
