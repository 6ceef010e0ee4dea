# SPDX-License-Identifier: Apache-2.0
"""``python -m mpi_trt_ansible``: see :mod:`mpi_trt_ansible.cli`."""

import sys

from mpi_trt_ansible.cli import main

sys.exit(main())
