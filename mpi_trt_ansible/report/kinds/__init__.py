# SPDX-License-Identifier: Apache-2.0
"""One Markdown renderer per ``mtrt_kind``: the place to add a section for a new module's results.

A renderer takes a result (the module's dict, scrubbed) and the path of that result in
report.json (for "every row is in ..." pointers) and returns Markdown lines, each block
ending in a blank line. Register it with ``@renderer(kind, ..., title=...)`` in the module
of its concern below, or in a new module listed in ``_KIND_MODULES``. A kind without a
renderer is shown as its keys and values. Results of an mpirun launch (they carry
``expected_placement``) get the launch block of :mod:`.launch` after their own lines,
whatever their kind.
"""

from __future__ import annotations

import importlib

RENDERERS = {}  # kind -> (title, render(data, where) -> [lines])


def renderer(*kinds, title):
    """Register the decorated function as the renderer of ``kinds`` under ``title``."""
    def register(function):
        for kind in kinds:
            RENDERERS[kind] = (title, function)
        return function
    return register


# The modules that register renderers (one per concern); a new concern adds its module here.
_KIND_MODULES = ("cluster", "mpi", "gpu", "trtllm", "serve", "hosts")
for _name in _KIND_MODULES:
    importlib.import_module("%s.%s" % (__name__, _name))
