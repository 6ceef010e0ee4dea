# SPDX-License-Identifier: Apache-2.0
"""TEST STAND-IN of the TensorRT-LLM ensemble's preprocessing model (tests only, never product code).

A byte-level tokenizer with the tensors of tensorrtllm_backend v0.14.0's preprocessing: text in,
token ids (the UTF-8 bytes) out. It touches no MPI (only the engine model may: a second MPI_Init
in one rank fails).
"""

import json

import numpy as np
import triton_python_backend_utils as pb_utils

END_ID = 0
PAD_ID = 0


class TritonPythonModel:
    def initialize(self, args):
        cfg = json.loads(args["model_config"])
        params = cfg.get("parameters") or {}
        for key in ("tokenizer_dir", "visual_model_path", "gpt_model_path"):
            if key not in params:  # the real model.py reads these unconditionally
                raise pb_utils.TritonModelException("parameter %s is missing from config.pbtxt" % key)
        self.dtypes = {o["name"]: pb_utils.triton_string_to_numpy(o["data_type"]) for o in cfg["output"]}

    def execute(self, requests):
        responses = []
        for request in requests:
            query = pb_utils.get_input_tensor_by_name(request, "QUERY").as_numpy()
            out_len = pb_utils.get_input_tensor_by_name(request, "REQUEST_OUTPUT_LEN").as_numpy()
            batch = query.shape[0]
            ids = [np.frombuffer(q[0] if isinstance(q[0], bytes) else str(q[0]).encode(), dtype=np.uint8)
                   for q in query]
            width = max(1, max(len(i) for i in ids))
            input_id = np.full((batch, width), PAD_ID, dtype=np.int32)
            for row, tok in enumerate(ids):
                input_id[row, :len(tok)] = tok
            lens = np.array([[len(t)] for t in ids], dtype=np.int32)
            words = np.array([[[0], [-1]]] * batch, dtype=np.int32)
            tensors = {
                "INPUT_ID": input_id, "REQUEST_INPUT_LEN": lens,
                "DECODER_INPUT_ID": np.zeros((batch, 1), dtype=np.int32),
                "REQUEST_DECODER_INPUT_LEN": np.zeros((batch, 1), dtype=np.int32),
                "BAD_WORDS_IDS": words, "STOP_WORDS_IDS": words,
                "EMBEDDING_BIAS": np.zeros((batch, 0), dtype=np.float32),
                "REQUEST_OUTPUT_LEN": out_len.astype(np.int32).reshape(batch, -1),
                "OUT_END_ID": np.full((batch, 1), END_ID, dtype=np.int32),
                "OUT_PAD_ID": np.full((batch, 1), PAD_ID, dtype=np.int32),
                "OUT_PROMPT_TABLE_EXTRA_IDS": np.zeros((batch, 1), dtype=np.uint64),
            }
            responses.append(pb_utils.InferenceResponse(
                [pb_utils.Tensor(name, value.astype(self.dtypes[name])) for name, value in tensors.items()]))
        return responses
