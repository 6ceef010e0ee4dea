# SPDX-License-Identifier: Apache-2.0
"""TEST STAND-IN of the TensorRT-LLM ensemble's postprocessing model (tests only, never product code).

The byte-level detokenizer matching the stand-in preprocessing: token ids -> text.
"""

import json

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        cfg = json.loads(args["model_config"])
        if "tokenizer_dir" not in (cfg.get("parameters") or {}):
            raise pb_utils.TritonModelException("parameter tokenizer_dir is missing from config.pbtxt")

    def execute(self, requests):
        responses = []
        for request in requests:
            tokens = pb_utils.get_input_tensor_by_name(request, "TOKENS_BATCH").as_numpy()
            lengths = pb_utils.get_input_tensor_by_name(request, "SEQUENCE_LENGTH").as_numpy()
            texts = []
            for row in range(tokens.shape[0]):
                beams = []
                for beam in range(tokens.shape[1]):
                    n = int(lengths[row][beam])
                    beams.append(bytes(int(t) & 0xFF for t in tokens[row][beam][:n]))
                texts.append(beams)
            out = np.array(texts, dtype=object)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT", out)]))
        return responses
