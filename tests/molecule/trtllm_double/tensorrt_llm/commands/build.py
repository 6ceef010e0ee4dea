# SPDX-License-Identifier: Apache-2.0
"""TEST DOUBLE of trtllm-build (tensorrt_llm.commands.build:main of 0.9.0 and 1.2; see ../README.md).

Options come from the recorded table: 0.9.0 has --max_output_len, --use_custom_all_reduce and the
auto-parallel --gpus_per_node (not written into the engine); 1.2 has --max_seq_len and no
--gpus_per_node at all (PR #8329), and keeps the checkpoint's mapping as it is.
"""
import json
import os
from importlib import metadata

from tensorrt_llm._double import parse, vtuple


def main():
    args = parse("trtllm-build")
    with open(os.path.join(args.checkpoint_dir, "config.json")) as handle:
        pretrained = json.load(handle)
    world = pretrained["mapping"]["world_size"]
    for rank in range(world):
        open(os.path.join(args.checkpoint_dir, "rank%d.safetensors" % rank), "rb").close()
    build = {"max_batch_size": args.max_batch_size, "max_input_len": args.max_input_len,
             "max_beam_width": args.max_beam_width,
             "plugin_config": {"gemm_plugin": args.gemm_plugin,
                               "remove_input_padding": args.remove_input_padding != "disable"}}
    if vtuple() >= (1, 0):
        build["max_seq_len"] = args.max_seq_len
    else:
        build["max_output_len"] = args.max_output_len
        build["plugin_config"]["use_custom_all_reduce"] = args.use_custom_all_reduce == "enable"
    os.makedirs(args.output_dir, exist_ok=True)
    with open(os.path.join(args.output_dir, "config.json"), "w") as handle:
        json.dump({"version": metadata.version("tensorrt_llm"), "pretrained_config": pretrained,
                   "build_config": build}, handle, indent=4)
    for rank in range(world):
        with open(os.path.join(args.output_dir, "rank%d.engine" % rank), "wb") as handle:
            handle.write(b"double engine rank %d\n" % rank)


if __name__ == '__main__':
    main()
