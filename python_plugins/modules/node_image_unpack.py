#!/usr/bin/python
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: node_image_unpack
short_description: Unpack the Triton Inference Server of the nvidia-pytriton wheel into an image build context
description:
  - The C(nvidia-pytriton) wheel ships a complete Triton Inference Server (tritonserver, the Python
    backend, Python backend stubs for several Python versions, the local cache) and every library it
    needs. This module lays out what a CPU node needs of it in the directory O(dest), as NVIDIA's
    images do under C(/opt/tritonserver) - C(bin/tritonserver), C(backends/python/) with the stub for
    O(python_version) put beside the backend (where the Python backend looks for it), C(caches/) and
    C(lib/) with only the grafted libraries the kept binaries need (their C(DT_NEEDED) entries,
    transitively; the wheel's own C(libpython) of other Python versions stays out).
  - Idempotent - writes a file only when its content or mode differs and removes files O(dest) holds
    that the layout no longer has; C(changed) only then. Runs on the controller (the image build
    context is there); nothing is downloaded.
author:
  - mpi-trt-ansible contributors
version_added: "1.0.0"
options:
  wheel:
    description: Path of the C(nvidia_pytriton-*.whl) file.
    type: path
    required: true
  dest:
    description: Directory that receives the server tree (created when missing).
    type: path
    required: true
  python_version:
    description: C(major.minor) of the image's C(python3); its backend stub is the one kept.
    type: str
    default: "3.11"
notes:
  - "Check mode: supported (reports what would change, writes nothing)."
"""

EXAMPLES = r"""
- name: Unpack the wheel's tritonserver into the build context
  node_image_unpack:
    wheel: /var/cache/mtrt/nvidia_pytriton-0.7.0-py3-none-manylinux_2_35_x86_64.whl
    dest: "{{ node_image_build_dir }}/node-triton/tritonserver"
    python_version: "3.11"
"""

RETURN = r"""
mtrt_kind:
  description: Always C(node_image_unpack).
  returned: always
  type: str
  sample: node_image_unpack
dest:
  description: The server tree's directory.
  returned: always
  type: str
files:
  description: Number of files of the layout.
  returned: always
  type: int
  sample: 46
bytes:
  description: Their total size.
  returned: always
  type: int
  sample: 110000000
libs:
  description: Grafted libraries kept (sonames), sorted.
  returned: always
  type: list
  elements: str
written:
  description: Files (relative to O(dest)) that were or would be written.
  returned: always
  type: list
  elements: str
removed:
  description: Files (relative to O(dest)) that were or would be removed.
  returned: always
  type: list
  elements: str
"""

import os
import zipfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.mtrt_fileio import atomic_write
from ansible.module_utils.mtrt_serve_image import plan_unpack


def _current(path, data, mode):
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    if st.st_size != len(data) or (st.st_mode & 0o7777) != mode:
        return False
    with open(path, "rb") as handle:
        return handle.read() == data


def main():
    module = AnsibleModule(
        argument_spec=dict(
            wheel=dict(type="path", required=True),
            dest=dict(type="path", required=True),
            python_version=dict(type="str", default="3.11"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    result = dict(mtrt_kind="node_image_unpack", changed=False, dest=p["dest"], files=0, bytes=0,
                  libs=[], written=[], removed=[])
    try:
        archive = zipfile.ZipFile(p["wheel"])
    except (OSError, zipfile.BadZipFile) as exc:
        module.fail_json(msg="cannot read the wheel %s: %s" % (p["wheel"], exc), **result)
    with archive:
        try:
            plan = plan_unpack(archive.namelist(), archive.read, p["python_version"])
        except ValueError as exc:
            module.fail_json(msg="%s: %s" % (p["wheel"], exc), **result)
        written = []
        total = 0
        for rel in sorted(plan):
            member, mode = plan[rel]
            data = archive.read(member)
            total += len(data)
            path = os.path.join(p["dest"], rel)
            if _current(path, data, mode):
                continue
            written.append(rel)
            if not module.check_mode:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                atomic_write(path, data, mode)
    removed = []
    if os.path.isdir(p["dest"]):
        for root, _dirs, files in os.walk(p["dest"]):
            for name in files:
                rel = os.path.relpath(os.path.join(root, name), p["dest"])
                if rel not in plan:
                    removed.append(rel)
                    if not module.check_mode:
                        os.unlink(os.path.join(root, name))
    result.update(changed=bool(written or removed), files=len(plan), bytes=total,
                  libs=sorted(os.path.basename(r) for r in plan if r.startswith("lib/")),
                  written=written, removed=sorted(removed))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
