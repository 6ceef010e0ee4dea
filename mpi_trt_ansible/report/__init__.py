# SPDX-License-Identifier: Apache-2.0
"""The run report: events -> report dict -> report.json, report.md and the console summary.

Plain Python (no Ansible imports), used by the ``run_report`` callback (which also prints the
summary at stage 99) and the API. By concern:

- :mod:`.builder`: runner-shaped events -> the report dict (schema in its docstring);
- :mod:`.secrets`: what never reaches a report (no_log results, internals, private keys);
- :mod:`.markdown` with :mod:`.kinds` (one renderer per ``mtrt_kind``): report.md;
- :mod:`.summary`: the console lines; :mod:`.store`: the files and the ``latest`` link.
"""

from __future__ import annotations

from .builder import CUT_SHORT, SCHEMA_VERSION, ReportBuilder, failure_message, iter_results, now_iso
from .kinds import RENDERERS, renderer
from .markdown import render_markdown
from .secrets import REDACTED, scrub
from .store import default_run_id, read_latest, write_report
from .summary import summary_lines

__all__ = [
    "CUT_SHORT", "REDACTED", "RENDERERS", "SCHEMA_VERSION", "ReportBuilder", "default_run_id",
    "failure_message", "iter_results", "now_iso", "read_latest", "render_markdown", "renderer",
    "scrub", "summary_lines", "write_report",
]
