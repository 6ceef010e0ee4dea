"""Python API for mpi-trt-ansible: run the pipeline through ansible-runner, get typed results.

See :mod:`mpi_trt_ansible.api`; ``python -m mpi_trt_ansible`` is a small CLI on top.
"""

from mpi_trt_ansible.api import (  # noqa: F401
    Failure,
    HelloResult,
    ModuleResult,
    RunFinished,
    RunHandle,
    RunResult,
    StageFinished,
    StageResult,
    StageStarted,
    TaskResult,
    find_project_dir,
    latest_report,
    run_pipeline,
    start_pipeline,
)

__all__ = [
    "Failure", "HelloResult", "ModuleResult", "RunFinished", "RunHandle", "RunResult",
    "StageFinished", "StageResult", "StageStarted", "TaskResult", "find_project_dir",
    "latest_report", "run_pipeline", "start_pipeline",
]
