# SPDX-License-Identifier: Apache-2.0
"""The model the TensorRT-LLM stages read, found before anything is created (docker and local modes).

The nodes see ``cluster_trtllm_model_dir`` (and the tokenizer's) as paths inside them. In docker mode the
shared mount (``cluster_shared_mount``) is ``cluster_shared_host_dir`` of the docker host, this machine, so
a path under the mount is a path here (:func:`host_path`); a path elsewhere is inside the image and left to
stage 80. In local mode the ranks run here and read the path as written. With several machines the
preflight across hosts compares the directories on every machine (``cluster_hosts_same_dirs``).

:func:`paths` says what to look at (the action stats them: :func:`dir_state`), :func:`problems` judges.
"""

from __future__ import annotations

import os
import posixpath

VARIABLES = ("cluster_trtllm_model_dir", "cluster_trtllm_tokenizer_dir")


def host_path(path, mode, mount, host_dir):
    """Where this machine has ``path`` as the nodes see it, or None where it cannot be seen from here."""
    if not isinstance(path, str) or not path.startswith("/"):
        return None
    if mode == "local":
        return posixpath.normpath(path)
    if mode != "docker" or not isinstance(mount, str) or not isinstance(host_dir, str) or not mount.startswith("/"):
        return None
    mount, path = posixpath.normpath(mount), posixpath.normpath(path)
    if path == mount or path.startswith(mount.rstrip("/") + "/"):
        return posixpath.normpath(host_dir + "/" + path[len(mount):])
    return None


def paths(values):
    """{variable: (path as the nodes see it, path here)} of the model and tokenizer directories that can be
    looked at from this machine (a tokenizer in the model directory is looked at once)."""
    out, seen = {}, set()
    for variable in VARIABLES:
        path = values.get(variable)
        here = host_path(path, values.get("cluster_mode"), values.get("cluster_shared_mount"),
                         values.get("cluster_shared_host_dir"))
        if here is not None and here not in seen:
            seen.add(here)
            out[variable] = (path, here)
    return out


def dir_state(path):
    """True: a directory; False: missing or not a directory; None: this user cannot tell (permissions)."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return None
    return os.path.isdir(path)


def problems(values, found):
    """The model or tokenizer directory that is not there. ``found``: {path here: dir_state(path)}."""
    mode = values.get("cluster_mode")
    out = []
    for variable, (path, here) in paths(values).items():
        if found.get(here) is not False:
            continue
        if mode == "docker":
            mount, host_dir = values.get("cluster_shared_mount"), values.get("cluster_shared_host_dir")
            message = ("%s %s is not a directory: the nodes see %s of the docker host localhost "
                       "(cluster_shared_host_dir, mounted at %s), and %s is not a directory there; the "
                       "TensorRT-LLM stages (80, 90) would stop at it." % (variable, path, host_dir, mount, here))
            fix = ("Put the Hugging Face model at %s on localhost, or set %s to where it is under %s (or "
                   "cluster_trtllm_enabled: false)." % (here, variable, mount))
        else:
            message = ("%s %s is not a directory on localhost (local mode: the ranks read it as written); the "
                       "TensorRT-LLM stages (80, 90) would stop at it." % (variable, path))
            fix = ("Put the Hugging Face model at %s on localhost, or set %s to where it is (or "
                   "cluster_trtllm_enabled: false)." % (path, variable))
        out.append({"variable": variable, "value": path, "message": message, "fix": fix, "host": "localhost"})
    return out
