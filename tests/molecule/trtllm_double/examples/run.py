"""TEST DOUBLE of TensorRT-LLM examples/run.py (0.7.x and later; see ../README.md).

Same options as the impersonated version, same world-size assert, same device
choice (rank % gpus_per_node) and the real error texts; rank 0 prints
deterministic text derived from each prompt in run.py's format.
"""
import argparse
import json
import os

import tensorrt_llm
from tensorrt_llm._double import CPP_ORDINAL_ERROR, engine_layout, visible_gpus, vtuple
from tensorrt_llm.runtime import ModelRunner


def parse_arguments():
    parser = argparse.ArgumentParser()
    parser.add_argument('--max_input_length', type=int, default=923)
    parser.add_argument('--max_output_len', type=int, required=True)
    parser.add_argument('--input_text', type=str, nargs='+',
                        default=["Born in north-east France, Soyer trained as a"])
    parser.add_argument('--input_file', type=str, default=None)
    parser.add_argument('--output_csv', type=str, default=None)
    parser.add_argument('--output_npy', type=str, default=None)
    parser.add_argument('--tokenizer_dir', default='gpt2')
    parser.add_argument('--engine_dir', type=str, default='engine_outputs')
    parser.add_argument('--num_beams', type=int, default=1)
    parser.add_argument('--temperature', type=float, default=1.0)
    parser.add_argument('--top_k', type=int, default=1)
    parser.add_argument('--top_p', type=float, default=0.0)
    parser.add_argument('--length_penalty', type=float, default=1.0)
    parser.add_argument('--repetition_penalty', type=float, default=1.0)
    parser.add_argument('--streaming', default=False, action='store_true')
    parser.add_argument('--use_py_session', default=False, action='store_true')
    parser.add_argument('--debug_mode', default=False, action='store_true')
    parser.add_argument('--no_add_special_tokens', dest='add_special_tokens', default=True,
                        action='store_false')
    parser.add_argument('--no_prompt_template', dest='use_prompt_template', default=True,
                        action='store_false')
    parser.add_argument('--log_level', type=str, default='error')
    if vtuple() >= (0, 8):
        parser.add_argument('--run_profiling', default=False, action='store_true')
    return parser.parse_args()


def reply(prompt, beam, max_output_len):
    words = ("Reply to \"%s\" from the double, beam %d.\nIt has two lines." % (prompt, beam)).split(" ")
    return " " + " ".join(words[:max_output_len])


def main(args):
    rank, world = tensorrt_llm.mpi_rank(), tensorrt_llm.mpi_world_size()
    with open(os.path.join(args.engine_dir, "config.json")) as handle:
        config = json.load(handle)
    flow, tp, pp, _ = engine_layout(config)
    assert tp * pp == world, \
        f'Engine world size ({tp * pp}) != Runtime world size ({world})'
    if not os.path.isdir(args.tokenizer_dir):
        raise OSError(f"Can't load tokenizer for '{args.tokenizer_dir}'. Make sure "
                      f"'{args.tokenizer_dir}' is the correct path to a directory containing all "
                      "relevant files for a tokenizer.")
    if args.use_py_session:
        ModelRunner.from_dir(args.engine_dir, rank=rank)
    else:
        gpus = 8
        if flow == "modern" and vtuple() >= (0, 11):
            gpus = config["pretrained_config"]["mapping"].get("gpus_per_node", 8)
        if rank % gpus >= visible_gpus():
            raise RuntimeError(CPP_ORDINAL_ERROR)
    if rank == 0 and args.output_csv is None and args.output_npy is None:
        for i, text in enumerate(args.input_text):
            print(f'Input [Text {i}]: "{text}"')
            for beam in range(args.num_beams):
                print(f'Output [Text {i} Beam {beam}]: "{reply(text, beam, args.max_output_len)}"')
    if getattr(args, "run_profiling", False):
        latency = 0.0123456789 * (rank + 1) * len(args.input_text)
        print(f"batch_size: {len(args.input_text)}, avg latency of 10 iterations: : {latency} sec")


if __name__ == '__main__':
    main(parse_arguments())
