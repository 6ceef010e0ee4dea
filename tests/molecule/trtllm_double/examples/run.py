# SPDX-License-Identifier: Apache-2.0
"""TEST DOUBLE of TensorRT-LLM examples/run.py (0.7.1, 0.9.0, 1.2; see ../README.md).

Options from the recorded table of the installed version; the world-size assert; the device each
rank picks as that version does (rank % gpus_per_node: 8 for 0.7.1 and 0.9.0 in both sessions; the
engine's pretrained_config.mapping.gpus_per_node in 1.2's Python session) with the real error
texts; the beam-width check; rank 0 prints deterministic text derived from each prompt.
"""
import json
import os
import sys

import tensorrt_llm
from tensorrt_llm._double import (legacy_engine_name, mpi_local_size, parse, set_device,
                                  table_version)


def reply(prompt, beam, max_output_len):
    words = ("Reply to \"%s\" from the double, beam %d.\nIt has two lines." % (prompt, beam)).split(" ")
    return " " + " ".join(words[:max_output_len])


def main(args):
    rank, world = tensorrt_llm.mpi_rank(), tensorrt_llm.mpi_world_size()
    with open(os.path.join(args.engine_dir, "config.json")) as handle:
        config = json.load(handle)
    if "pretrained_config" in config:
        mapping = config["pretrained_config"]["mapping"]
        tp, pp, beam_width = mapping["tp_size"], mapping["pp_size"], config["build_config"]["max_beam_width"]
        engine_file = "rank%d.engine" % rank
    else:
        bc = config["builder_config"]
        tp, pp, beam_width = bc["tensor_parallel"], bc.get("pipeline_parallel", 1), bc["max_beam_width"]
        engine_file = legacy_engine_name(bc, rank)
        mapping = {}
    assert tp * pp == world, f'Engine world size ({tp} * {pp}) != Runtime world size ({world})'
    if not os.path.isdir(args.tokenizer_dir or ""):
        raise OSError(f"Can't load tokenizer for '{args.tokenizer_dir}'.")
    gpus = 8
    if table_version() == "1.2" and args.use_py_session and "pretrained_config" in config:
        gpus = mapping.get("gpus_per_node", 8)
        if world > gpus:
            assert mpi_local_size() == gpus
    set_device(rank % gpus, cpp=not args.use_py_session)
    with open(os.path.join(args.engine_dir, engine_file), "rb") as handle:
        handle.read()
    if args.num_beams > beam_width:
        raise RuntimeError(f"Num beams ({args.num_beams}) exceeds the engine or specified limit ({beam_width})")
    if rank == 0 and args.output_csv is None and args.output_npy is None:
        for i, text in enumerate(args.input_text):
            print(f'Input [Text {i}]: "{text}"')
            for beam in range(args.num_beams):
                print(f'Output [Text {i} Beam {beam}]: "{reply(text, beam, args.max_output_len)}"')
    if getattr(args, "run_profiling", False):
        latency = 0.0123456789 * (rank + 1) * len(args.input_text)
        print(f"batch_size: {len(args.input_text)}, avg latency of 10 iterations: : {latency} sec")
    sys.stdout.flush()


if __name__ == '__main__':
    main(parse("run.py"))
