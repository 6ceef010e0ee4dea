# SPDX-License-Identifier: Apache-2.0
"""The GPU layout rule of preflight: one rank per GPU where GPUs are pinned (mpi_trt_ansible.preflight.gpus)."""

from mpi_trt_ansible.preflight.gpus import layout_problems as gpu_layout_problems

# --- inventory layout for GPU stages ---------------------------------------------------------------

def test_gpu_layout_problems_slots_over_pinned_gpus():
    problems = gpu_layout_problems([
        {"name": "gpu0", "slots": 2, "gpus": [0]},          # issue #18: 2 ranks on 1 GPU
        {"name": "node2", "slots": 1, "gpus": [1]},         # fine
        {"name": "node3", "slots": 4, "gpus": 2},           # a count instead of ids
        {"name": "node4", "slots": 2, "gpus": []},          # nothing pinned: judged at run time
        {"name": "node5", "slots": "two", "gpus": [0]},     # not a number: preflight names it elsewhere
        {"name": "node6", "slots": 2, "gpus": [0, "x"]},
    ])
    assert problems == [
        {"variable": "node_slots (gpu0)", "value": 2,
         "message": "node_slots (gpu0) is 2, but gpu0 has 1 GPU pinned (node_gpus [0]): 2 ranks would share GPUs, "
                    "which NCCL refuses ('Duplicate GPU detected') and TensorRT-LLM does not do (one rank per GPU).",
         "fix": "Set node_slots to 1 on host gpu0, or pin 2 GPUs to it with node_gpus."},
        {"variable": "node_slots (node3)", "value": 4,
         "message": "node_slots (node3) is 4, but node3 has 2 GPUs pinned (2 GPUs): 4 ranks would share GPUs, "
                    "which NCCL refuses ('Duplicate GPU detected') and TensorRT-LLM does not do (one rank per GPU).",
         "fix": "Set node_slots to 2 on host node3, or pin 4 GPUs to it with node_gpus."}]
    assert gpu_layout_problems([]) == [] and gpu_layout_problems(None) == []
