"""Double of tensorrt_llm/runtime/model_runner.py: the Python session's device choice.

The set_device line is spelled exactly as in 0.7-0.10, so the project's
gpus_per_node patch applies to this file as it does to the real one.
"""
import json
import os

from tensorrt_llm._double import Mapping, engine_layout, torch, vtuple


class ModelRunner:

    def __init__(self, engine_file):
        self.engine_file = engine_file

    @classmethod
    def from_dir(cls, engine_dir, rank=0):
        with open(os.path.join(engine_dir, "config.json")) as handle:
            config = json.load(handle)
        flow, tp_size, pp_size, engine_name = engine_layout(config)
        world_size = tp_size * pp_size
        if flow == "modern" and vtuple() >= (0, 11):
            gpus = config["pretrained_config"]["mapping"].get("gpus_per_node", 8)
            runtime_mapping = Mapping(world_size=world_size, rank=rank, gpus_per_node=gpus,
                                      tp_size=tp_size, pp_size=pp_size)
        else:
            runtime_mapping = Mapping(world_size=world_size, rank=rank,
                                      tp_size=tp_size, pp_size=pp_size)
        torch.cuda.set_device(rank % runtime_mapping.gpus_per_node)
        with open(os.path.join(engine_dir, engine_name(rank)), "rb") as handle:
            handle.read()
        return cls(engine_name(rank))
