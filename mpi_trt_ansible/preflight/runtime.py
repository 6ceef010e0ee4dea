# SPDX-License-Identifier: Apache-2.0
"""What the ranks' interpreter holds, read before anything is created, and the rules on it.

The ranks run ``cluster_mpi_python``. Preflight reads, with one small script run by that interpreter
(:data:`PROBE`), its TensorRT-LLM version (``importlib.metadata``, nothing imported) and whether it imports
mpi4py:

* local mode: on the controller itself, which is the node (:func:`probe_python`); the answer is kept and
  reused while the interpreter and every directory of its ``sys.path`` keep their modification times
  (installing or removing a package changes its directory's) (:func:`cached_local_probe`);
* docker modes: inside the base image (``cluster_image_base``), in a throwaway container without network,
  created and removed by its exact name (:func:`probe_image`), once per image ID: the answer is kept in
  the cluster's state directory (:func:`cached_image_probe`), so a warm run asks docker nothing. The
  empty base (the offline Debian one) is known by construction (:func:`offline_base`);
* hosts mode: the preflight across hosts already reads every machine's interpreter (``hosts_preflight_facts``).

The rules (no I/O): :func:`trtllm_gate` (do the TensorRT-LLM stages run, with which version, and what
stops ``cluster_trtllm_enabled: true``) and :func:`mpi4py_problems` (the ranks' interpreter imports mpi4py,
or the node image will give it mpi4py). A probe's result is
``{found, python, realpath, python3, tensorrt_llm, mpi4py, mpi4py_error}`` (``found`` False: the
interpreter cannot be run; ``error`` instead of ``found``: the probe itself could not run).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess

from mpi_trt_ansible.containers import tagged
from mpi_trt_ansible.fileio import atomic_write
from mpi_trt_ansible.preflight import facts
from mpi_trt_ansible.trtllm import VERSION_PROBE

MARKER = "MTRT-PREFLIGHT-PROBE "
# Run by the ranks' interpreter (Python 3.6 and later): reads, imports nothing of TensorRT-LLM.
PROBE = VERSION_PROBE + r"""
import json, os, shutil, site, sys
out = {"python": sys.executable, "realpath": os.path.realpath(sys.executable), "python3": None,
       "tensorrt_llm": None, "mpi4py": None, "mpi4py_error": None,
       "sys_path": [p for p in sys.path if p and os.path.isdir(p)]}
try:
    out["sys_path"].append(site.getusersitepackages())
except Exception:
    pass
found = shutil.which("python3")
out["python3"] = os.path.realpath(found) if found else None
out["tensorrt_llm"] = _mtrt_trtllm_version()
try:
    import mpi4py
    out["mpi4py"] = getattr(mpi4py, "__version__", "unknown")
except Exception as exc:
    out["mpi4py_error"] = "%s: %s" % (type(exc).__name__, exc)
print("MTRT-PREFLIGHT-PROBE " + json.dumps(out))
"""
# A cached answer is only reused for the same script.
PROBE_ID = hashlib.sha256(PROBE.encode()).hexdigest()[:12]
CACHE_FILE = "preflight-probes.json"
_CACHE_ENTRIES = 64
# `docker` / the OCI runtime's words when the entrypoint does not exist in the image.
_NOT_FOUND = ("executable file not found", "no such file or directory")


def parse(text):
    """The probe's answer in ``text`` (the last marked line; an image's entrypoint banner may come first)."""
    for line in reversed(str(text or "").splitlines()):
        if line.startswith(MARKER):
            try:
                return json.loads(line[len(MARKER):])
            except ValueError:
                return None
    return None


def _tail(text, width=300):
    lines = [line.strip() for line in str(text or "").strip().splitlines() if line.strip()]
    return lines[-1][:width] if lines else "no output"


# --------------------------------------------------------------------------- reading
def probe_python(python, timeout_s=60):
    """Run the probe with ``python`` here (local mode: this machine is the node)."""
    try:
        proc = subprocess.run([python, "-c", PROBE], capture_output=True, text=True, timeout=timeout_s,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return {"error": "%s did not answer within %d s" % (python, timeout_s)}
    except OSError as exc:
        return {"found": False, "python": python, "error": "%s: %s" % (type(exc).__name__, exc.strerror or exc)}
    info = parse(proc.stdout)
    if info is None:
        return {"found": False, "python": python,
                "error": "it exited %d without answering: %s" % (proc.returncode, _tail(proc.stderr or proc.stdout))}
    return dict(info, found=True)


def probe_image(image, python, label="", timeout_s=120, docker_host=None):
    """Run the probe with ``python`` in a throwaway container of ``image`` (no network, no mounts).

    The container has a name of its own and is removed by that name whatever happens. Raises nothing:
    an answer without ``found`` carries the ``error`` that kept the probe from running.
    """
    try:
        docker, client = facts.docker_client(docker_host, timeout_s)
    except facts.DockerUnavailable as exc:
        return {"error": str(exc)}
    name = "mtrt-preflight-probe-%d-%06d" % (os.getpid(), random.randrange(10 ** 6))
    try:
        client.create_container(image, name=name, entrypoint=[python, "-c", PROBE], network_disabled=True,
                                labels={"mtrt.probe_of": label or "preflight"},
                                host_config=client.create_host_config(network_mode="none"))
        try:
            client.start(name)
        except docker.errors.APIError as exc:
            text = str(getattr(exc, "explanation", None) or exc)
            if any(words in text.lower() for words in _NOT_FOUND):
                return {"found": False, "python": python, "error": _tail(text)}
            raise
        status = client.wait(name, timeout=timeout_s).get("StatusCode")
        output = client.logs(name, stdout=True, stderr=True).decode("utf-8", "replace")
        info = parse(output)
        if info is None:
            return {"found": False, "python": python,
                    "error": "it exited %s without answering: %s" % (status, _tail(output))}
        return dict(info, found=True)
    except Exception as exc:  # noqa: BLE001 - docker, requests and socket errors alike end the probe
        return {"error": "%s: %s" % (type(exc).__name__, _tail(str(exc)))}
    finally:
        try:
            client.remove_container(name, force=True)
        except Exception:  # noqa: BLE001,S110 - it was never created, or is gone already
            pass
        client.close()


def _load_cache(path):
    try:
        with open(path, encoding="utf-8") as handle:
            cache = json.load(handle)
    except (OSError, ValueError):
        return {}
    return cache if isinstance(cache, dict) else {}


def _store(path, key, value):
    """Keep ``value`` under ``key`` in the cache file ``path`` (the newest entries; 0600 in a 0700 directory)."""
    if not path:
        return
    cache = _load_cache(path)
    entries = [(k, v) for k, v in cache.items() if k != key][-(_CACHE_ENTRIES - 1):] + [(key, value)]
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        atomic_write(path, json.dumps(dict(entries), indent=1, sort_keys=True).encode(), 0o600)
    except OSError:
        pass  # no cache: the next run asks again


def cached_image_probe(image_id, python, state_dir, probe=probe_image, **kwargs):
    """The probe of ``python`` in image ``image_id``, run once per image ID.

    An image ID names its content, so the answer is kept in ``state_dir``/preflight-probes.json and a
    warm run reads it instead of starting a container. Answers of a probe that could not run are not kept.
    """
    key = "%s %s %s" % (PROBE_ID, image_id, python)
    path = os.path.join(state_dir, CACHE_FILE) if state_dir else None
    cached = _load_cache(path).get(key) if path else None
    if isinstance(cached, dict):
        return dict(cached, cached=True)
    info = probe(image_id, python, **kwargs)
    if "found" in info:
        _store(path, key, info)
    return dict(info, cached=False)


def _stamps(paths):
    """{path: modification time in ns, None where it does not exist}."""
    out = {}
    for path in paths:
        try:
            out[path] = os.stat(path).st_mtime_ns
        except OSError:
            out[path] = None
    return out


def cached_local_probe(python, state_dir, probe=probe_python, **kwargs):
    """The probe of ``python`` on this machine, run again only when something it read may have changed.

    Reused while ``python`` resolves to the same file on PATH, the Python variables of the environment are
    the same, and the interpreter and every directory of its ``sys.path`` (the user site included, even
    while it does not exist) keep their modification times. Not kept for an interpreter reached through a
    wrapper (``python`` resolves to another file than the interpreter that ran).
    """
    found = shutil.which(python)
    env = [os.environ.get(name) for name in ("PYTHONPATH", "PYTHONHOME", "PYTHONUSERBASE", "PYTHONNOUSERSITE")]
    key = "%s local %s %s %s" % (PROBE_ID, python, os.path.realpath(found) if found else None, json.dumps(env))
    path = os.path.join(state_dir, CACHE_FILE) if state_dir else None
    cached = _load_cache(path).get(key) if path and found else None
    if isinstance(cached, dict) and isinstance(cached.get("stamps"), dict) \
            and _stamps(list(cached["stamps"])) == cached["stamps"]:
        return dict(cached.get("info") or {}, cached=True)
    info = probe(python, **kwargs)
    # Only an interpreter reached directly: a wrapper (a pyenv shim) may choose another one next time.
    if info.get("found") and found and os.path.realpath(found) == info.get("realpath"):
        watched = [os.path.realpath(found)] + list(info.get("sys_path") or [])
        _store(path, key, {"info": info, "stamps": _stamps(watched)})
    return dict(info, cached=False)


def offline_base(python):
    """The offline Debian base (cluster_image_base ""): Debian's python3 with python3-mpi4py, no TensorRT-LLM."""
    if str(python) in ("python3", "/usr/bin/python3"):
        return {"found": True, "python": python, "realpath": "/usr/bin/python3", "python3": "/usr/bin/python3",
                "tensorrt_llm": None, "mpi4py": "python3-mpi4py", "mpi4py_error": None, "by_construction": True}
    return None  # another interpreter: known only once the base exists


def image_id(listing, ref):
    """The ID of image ``ref`` (name[:tag]) in a docker listing, or None."""
    wanted = tagged(ref)
    for image in (listing or {}).get("images") or []:
        if wanted in (image.get("RepoTags") or []) or ref == image.get("Id"):
            return image.get("Id")
    return None


# --------------------------------------------------------------------------- rules
def _problem(variable, value, message, fix, host):
    return {"variable": variable, "value": value, "message": message, "fix": fix, "host": host}


def version_of(info):
    """The tensorrt_llm version a probe found (None: none there, or not read)."""
    return (info or {}).get("tensorrt_llm") if (info or {}).get("found") else None


def known(info):
    """Whether a probe read the interpreter (found or not), as opposed to not having run."""
    return bool(info) and "found" in info


def trtllm_gate(enabled, gpus, info, where, host="localhost", gpus_where="this machine"):
    """Whether the TensorRT-LLM stages run, the version they use, and what refuses ``enabled: true``.

    ``enabled``: cluster_trtllm_enabled; ``gpus``: the GPUs the ranks can have ([]: none); ``gpus_where``:
    the machine they are on, or None where the GPUs are judged elsewhere (several machines); ``info``: the
    probe of the ranks' interpreter (None: not read); ``where``: what it was read in ("in image X on the
    docker host localhost"). ``auto`` runs where there are GPUs and a TensorRT-LLM (or it
    is not known yet); ``true`` always runs, and is refused without GPUs or without tensorrt_llm.
    Returns ``(runs, version, problems)``.
    """
    mode = str(enabled).lower()
    version = version_of(info)
    if mode == "auto":
        return bool(gpus) and (version is not None or not known(info)), version, []
    if mode != "true":
        return False, version, []
    why = []
    if gpus_where is not None and not gpus:
        why.append("no GPU the ranks could use is on %s (nvidia-smi lists none)" % gpus_where)
    if known(info) and version is None:
        python = info.get("python") or "python3"
        why.append("the ranks' interpreter (cluster_mpi_python) %s %s has no tensorrt_llm%s" % (
            python, where, "" if info.get("found") else " (it cannot be run there: %s)" % info.get("error")))
    if not why:
        return True, version, []
    return True, version, [_problem(
        "cluster_trtllm_enabled", enabled,
        "cluster_trtllm_enabled is true, but %s: the TensorRT-LLM stages (80, 90) cannot run." % " and ".join(why),
        "Run on a host with GPUs and a TensorRT-LLM image (cluster_image_base with tensorrt_llm 0.7.1, 0.9.0 or "
        "1.2.x, cluster_mpi_python its interpreter), or set cluster_trtllm_enabled: auto (the stages then skip "
        "and say why) or false.", host)]


def node_image_supplies(info, python):
    """Whether the node image gives ``python`` mpi4py where the base lacks it.

    Its Dockerfile (roles/node_image) installs Debian's python3 when there is none and python3-mpi4py when
    ``python3 -c 'import mpi4py'`` fails: that serves the distribution's /usr/bin/python3 and no other.
    """
    if not info.get("found"):
        return str(python) in ("python3", "/usr/bin/python3")
    real = info.get("realpath") or ""
    return bool(real) and real == info.get("python3") and real.startswith("/usr/bin/")


def mpi4py_problems(info, python, where, host="localhost", image=None):
    """The ranks' interpreter must run and import mpi4py (stage 60 and every later MPI stage need it).

    ``image``: the base image in docker modes (the node image then adds what its Dockerfile adds), None in
    local mode.
    """
    if not known(info) or (info.get("found") and info.get("mpi4py")):
        return []
    if image is not None and node_image_supplies(info, python):
        return []
    if not info.get("found"):
        message = ("cluster_mpi_python %r cannot be run %s (%s); every rank runs it (stages 60 to 90)."
                   % (python, where, info.get("error") or "not found"))
        fix = ("Set cluster_mpi_python to an interpreter %s has (python3: the node image adds Debian's python3 and "
               "python3-mpi4py where they are missing), or use a base image that has %s." % (image, python)
               if image is not None else
               "Install it on %s, or set cluster_mpi_python to an interpreter this machine has (e.g. python3)."
               % host)
    else:
        message = ("cluster_mpi_python %r (%s) %s does not import mpi4py (%s): the ranks of stage 60 (mpi_hello) "
                   "and of every later MPI stage would fail." % (python, info.get("realpath") or python, where,
                                                                 info.get("mpi4py_error") or "not installed"))
        fix = ("Install mpi4py for %s in the base image %s (pip install mpi4py, built against the image's Open MPI), "
               "or set cluster_mpi_python: python3 (the node image installs Debian's python3-mpi4py for it)."
               % (python, image) if image is not None else
               "Install mpi4py for %s on %s (apt-get install python3-mpi4py for the system python3, or "
               "%s -m pip install mpi4py with Open MPI's mpicc on PATH), or set cluster_mpi_python to an "
               "interpreter that imports it." % (python, host, python))
    return [_problem("cluster_mpi_python", python, message, fix, host)]


def probe_error_problems(info, python, where, host="localhost", image=None):
    """A probe that could not run at all (docker refused the container, the interpreter hung)."""
    if not info or "found" in info or not info.get("error"):
        return []
    if image is not None:
        return [_problem("cluster_image_base", image,
                         "The ranks' interpreter %s could not be read %s: %s." % (python, where, info["error"]),
                         "Check that the image runs here (docker run --rm --network none --entrypoint %s %s -V), "
                         "or choose another cluster_image_base." % (python, image), host)]
    return [_problem("cluster_mpi_python", python,
                     "The ranks' interpreter %s could not be read %s: %s." % (python, where, info["error"]),
                     "Check that %s -V answers on %s, or set cluster_mpi_python to another interpreter."
                     % (python, host), host)]
