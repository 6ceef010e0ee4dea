#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Fetch the pinned nvidia-pytriton wheel into the controller's wheel cache, checked by sha256.

The one place the wheel is fetched: the node_image role runs it (with its variables) before it
unpacks the server into the image's build context, and scripts/test.sh runs it (with the role's
defaults) so the unit test of the real wheel runs in CI. The cache lives outside every state
directory (teardown, molecule and the benchmarks delete those):
``$XDG_CACHE_HOME/mpi-trt-ansible/wheels`` (``~/.cache/...``), or ``$MTRT_WHEEL_CACHE``.

    python3 roles/node_image/files/fetch_wheel.py            # the role's pin, the default cache
    python3 roles/node_image/files/fetch_wheel.py --spec nvidia-pytriton==0.7.0 --file F --sha256 S --dest D

A file already there with the pinned sha256 is used as it is (pip is not run). One with another
sha256 is never replaced: the run fails naming both checksums. pip downloads into a temporary
directory beside the cache, and only a file with the pinned sha256 is moved into place, so a
concurrent or interrupted fetch never leaves a partial wheel where a reader would take it. It
prints one JSON line: ``{"path", "changed", "sha256"}``; on a failure it exits 1 with the reason.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULTS = os.path.join(HERE, "..", "defaults", "main.yml")
PIN_KEYS = {"spec": "node_image_triton_wheel", "file": "node_image_triton_wheel_file",
            "sha256": "node_image_triton_wheel_sha256"}


def default_cache():
    """The controller's wheel cache (the node_image role's default node_image_triton_wheel_dir)."""
    if os.environ.get("MTRT_WHEEL_CACHE"):
        return os.environ["MTRT_WHEEL_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "mpi-trt-ansible", "wheels")


def role_pin(path=DEFAULTS):
    """``{spec, file, sha256}`` as the node_image role's defaults pin them."""
    import yaml  # the controller's Python has it (Ansible needs it)

    with open(path) as handle:
        defaults = yaml.safe_load(handle)
    return {key: str(defaults[name]) for key, name in PIN_KEYS.items()}


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(spec, name, sha256, dest, timeout_s=600, python=sys.executable):
    """Return ``{path, changed, sha256}``; raise RuntimeError saying what went wrong."""
    target = os.path.join(dest, name)
    if os.path.isfile(target):
        have = sha256_of(target)
        if have != sha256:
            raise RuntimeError("%s is not the pinned wheel (sha256 %s, expected %s for %s): delete it and run again, "
                               "or pin another wheel (node_image_triton_wheel, _file and _sha256 together)"
                               % (target, have, sha256, spec))
        return {"path": target, "changed": False, "sha256": have}
    os.makedirs(dest, exist_ok=True)
    work = tempfile.mkdtemp(prefix=".fetch-", dir=dest)
    try:
        argv = [python, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--dest", work, spec]
        try:
            run = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise RuntimeError("pip download %s took longer than %ds; put %s into %s by hand where PyPI is "
                               "unreachable" % (spec, timeout_s, name, dest))
        got = os.path.join(work, name)
        if run.returncode != 0 or not os.path.isfile(got):
            tail = "\n".join((run.stdout + run.stderr).strip().splitlines()[-5:])
            raise RuntimeError("pip download %s did not give %s (rc %s): %s. Put the file into %s by hand where "
                               "PyPI is unreachable" % (spec, name, run.returncode, tail or "no output", dest))
        have = sha256_of(got)
        if have != sha256:
            raise RuntimeError("pip downloaded %s with sha256 %s, not the pinned %s; it was not kept"
                               % (name, have, sha256))
        os.replace(got, target)
        return {"path": target, "changed": True, "sha256": have}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spec", help="pip requirement (default: the node_image role's node_image_triton_wheel)")
    ap.add_argument("--file", help="the wheel's file name (default: node_image_triton_wheel_file)")
    ap.add_argument("--sha256", help="its sha256 (default: node_image_triton_wheel_sha256)")
    ap.add_argument("--dest", default=None, help="the wheel cache (default: %s)" % default_cache())
    ap.add_argument("--timeout", type=int, default=600, help="seconds pip download may take")
    args = ap.parse_args(argv)
    pin = {"spec": args.spec, "file": args.file, "sha256": args.sha256}
    if not all(pin.values()):
        pin = dict(role_pin(), **{k: v for k, v in pin.items() if v})
    try:
        result = fetch(pin["spec"], pin["file"], pin["sha256"], args.dest or default_cache(), args.timeout)
    except RuntimeError as exc:
        sys.stderr.write("fetch_wheel: %s\n" % exc)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
