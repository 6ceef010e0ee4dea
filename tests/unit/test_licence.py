# SPDX-License-Identifier: Apache-2.0
"""Every tracked source file names its licence (SPDX) at its top, in a comment of its own language; the
package metadata names the same licence and ships LICENSE."""

import os
import subprocess
import tomllib

from conftest import ROOT

SPDX = "SPDX-License-Identifier: Apache-2.0"
HEAD_LINES = 3
# Data captured from real runs is kept byte for byte: no header goes into it.
NOT_SOURCE = ("tests/unit/fixtures/",)


def tracked_files():
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [name for name in out.decode().split("\0") if name]


def source_kind(path):
    """'jinja', 'hash' (a # comment: Python, shell, any script with a shebang, Dockerfiles) or None."""
    name = os.path.basename(path)
    if path.endswith(".j2"):
        return "jinja"
    if path.endswith((".py", ".sh")) or name.startswith("Dockerfile"):
        return "hash"
    with open(os.path.join(ROOT, path), "rb") as handle:
        return "hash" if handle.read(2) == b"#!" else None


def test_every_tracked_source_file_carries_the_header():
    files = tracked_files()
    assert "site.yml" in files and "python_plugins/module_utils/mtrt_launch.py" in files  # the real list
    checked, missing = 0, []
    for path in files:
        full = os.path.join(ROOT, path)
        if path.startswith(NOT_SOURCE) or os.path.islink(full) or not os.path.isfile(full):
            continue
        kind = source_kind(path)
        if kind is None:
            continue
        checked += 1
        with open(full, encoding="utf-8") as handle:
            head = [next(handle, "").rstrip("\n") for _ in range(HEAD_LINES)]
        # A Jinja comment on the first line renders nothing, so the rendered file is unchanged.
        want = "{# %s #}" % SPDX if kind == "jinja" else "# %s" % SPDX
        if (head[:1] if kind == "jinja" else head).count(want) != 1:
            missing.append(path)
    assert missing == [], "no %r in the first lines of: %s" % (SPDX, ", ".join(missing))
    assert checked > 150


def test_package_metadata_names_the_licence():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().lstrip().startswith("Apache License")
