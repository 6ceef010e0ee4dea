# SPDX-License-Identifier: Apache-2.0
"""The suite itself: pytest's default import mode needs each test module's basename unique.

tests/unit and tests/integration have no __init__.py, so pytest imports every test module
by its basename; two files of one name make collection stop with "import file mismatch"
and no test runs at all (this stopped a CI run once).
"""

import collections
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_test_module_basenames_are_unique_across_suites():
    seen = collections.defaultdict(list)
    for suite in ("tests/unit", "tests/integration"):
        for path in (ROOT / suite).rglob("test_*.py"):
            seen[path.name].append(str(path.relative_to(ROOT)))
    clashes = {name: paths for name, paths in seen.items() if len(paths) > 1}
    assert not clashes, f"test modules share a basename (rename one): {clashes}"
