# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""trtllm_inference_run runs as its module on the launcher; a failed launch is diagnosed on the controller (mpi_trt_ansible.launch_action)."""

from mpi_trt_ansible.launch_action import LaunchAction as ActionModule  # noqa: F401
