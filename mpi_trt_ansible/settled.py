# SPDX-License-Identifier: Apache-2.0
"""Settled stages: when a run may skip the stages that would change nothing (docker mode).

Stages 10 to 50 (the node image, the network, the keys and rendered files, the node containers, the SSH
mesh check) are a function of their inputs: every setting as the plays see it, the project's own files,
the base image. At the end of stage 40, a run that ran all of them records their inputs' digest and what
they left (the base image's ID as it is then - stage 10 may have just built it -, the node image's and the
network's IDs, every container's ID and state, every file of the state directory's ``cluster/``, ``ssh/``
and ``hostkeys/`` with its sha256 and mode). The next run's
preflight computes the digest again and compares the record with docker's listing and the files: when
all of it holds, those stages are *settled* and their plays match no host; anything that differs (a
setting, a project file, a container stopped or replaced, a file edited or removed, the base image
reloaded) runs them as before. The hello still proves the cluster in every run.

Controller-side, plain Python, no Ansible imports.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time

from mpi_trt_ansible.containers import tagged

# The stages a settled run skips: (number, key), in order.
STAGES = (("10", "node_image"), ("20", "cluster_network"), ("30", "ssh_keys"), ("35", "mpi_config"),
          ("40", "node_containers"), ("50", "ssh_mesh"))
# What of the project the stages run (their code, templates, files, plays).
PROJECT_PARTS = ("site.yml", "ansible.cfg", "playbooks", "roles", "python_plugins", "mpi_trt_ansible")
# What of the state directory they write.
STATE_PARTS = ("cluster", "ssh", "hostkeys")
# The playbooks of those stages up to the one that records (a run must have run every one of them).
RECORDED_BY = ("10_node_image.yml", "20_cluster_network.yml", "30_ssh_keys.yml", "35_mpi_config.yml",
               "40_node_containers.yml")
RECORD = "settled.json"
VERSION = 2
_IMPORT_KEYS = ("import_playbook", "ansible.builtin.import_playbook")


def record_path(state_dir):
    return os.path.join(state_dir, RECORD)


def _files_under(root, parts):
    for part in parts:
        path = os.path.join(root, part)
        if os.path.isfile(path):
            yield part, path
            continue
        for base, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.startswith("."))
            for name in sorted(files):
                if not name.endswith((".pyc", ".pyo")):
                    full = os.path.join(base, name)
                    yield os.path.relpath(full, root), full


def playbooks_run(paths, _seen=None):
    """Base names of the playbooks ``paths`` run: themselves and every playbook they import, recursively
    (``import_playbook`` with a plain path, relative to the importing file)."""
    import yaml  # PyYAML: Ansible's own dependency

    seen = set() if _seen is None else _seen
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for path in paths:
        path = os.path.abspath(path)
        if path in seen:
            continue
        seen.add(path)
        try:
            with open(path, encoding="utf-8") as handle:
                plays = yaml.load(handle, Loader=loader) or []  # noqa: S506 - a safe loader
        except (OSError, yaml.YAMLError):
            continue
        for play in plays if isinstance(plays, list) else []:
            target = next((play[k] for k in _IMPORT_KEYS if isinstance(play, dict) and isinstance(play.get(k), str)),
                          None)
            if target and "{{" not in target:
                playbooks_run([os.path.join(os.path.dirname(path), target)], seen)
    return {os.path.basename(p) for p in seen}


def full_run(playbooks, run_tags, skip_tags):
    """Whether a run of ``playbooks`` (the command line's) with these tags runs every stage up to the one that
    records: only such a run may record what the stages left for its inputs."""
    stage_tags = {key for _number, key in STAGES}
    return (set(RECORDED_BY) <= playbooks_run(playbooks) and set(run_tags or ["all"]) == {"all"}
            and not stage_tags & set(skip_tags or ()))


def project_digest(root):
    """sha256 over every file the stages run (path and content)."""
    digest = hashlib.sha256()
    for rel, path in _files_under(root, PROJECT_PARTS):
        digest.update(rel.encode() + b"\0")
        try:
            with open(path, "rb") as handle:
                digest.update(hashlib.sha256(handle.read()).digest())
        except OSError:
            digest.update(b"unreadable")
    return digest.hexdigest()


def inputs_digest(parts):
    """sha256 of the inputs (``parts``: plain data - the settings as the plays see them, the project digest,
    the base image ID, ...), order-independent."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def state_files(state_dir):
    """``{relative path: {sha256, mode}}`` of the files the stages write in the state directory."""
    out = {}
    for rel, path in _files_under(state_dir, STATE_PARTS):
        try:
            with open(path, "rb") as handle:
                data = handle.read()
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except OSError:
            continue
        out[rel] = {"sha256": hashlib.sha256(data).hexdigest(), "mode": "%04o" % mode}
    return out


def _image_id(listing, ref):
    for image in listing.get("images") or []:
        if ref in (image.get("RepoTags") or []):
            return image.get("Id")
    return None


def _network_id(listing, name):
    for network in listing.get("networks") or []:
        if network.get("Name") == name:
            return network.get("Id")
    return None


def base_image_ids(listing, base):
    """IDs of the base image: ``base`` (``cluster_image_base``; no tag means ``:latest``), or where it is empty
    the images the node image stage built as a base (label ``mtrt.role=base``)."""
    wanted = tagged(base)
    return sorted(i.get("Id") for i in listing.get("images") or []
                  if (wanted in (i.get("RepoTags") or []) if base
                      else (i.get("Labels") or {}).get("mtrt.role") == "base"))


def docker_outputs(listing, image_ref, network, names, base=""):
    """What stages 10, 20 and 40 left (and the base image they built on), as docker's listing shows it."""
    containers = {}
    for entry in listing.get("containers") or []:
        for name in entry.get("Names") or []:
            if name.lstrip("/") in names:
                containers[name.lstrip("/")] = {"id": entry.get("Id"), "state": entry.get("State"),
                                                "image": entry.get("ImageID")}
    return {"base": base_image_ids(listing, base), "image": _image_id(listing, image_ref),
            "network": _network_id(listing, network), "containers": containers}


def make_record(digest, listing, image_ref, network, names, state_dir, base=""):
    """The record stage 40 writes when every stage before it ran in this run."""
    return {"version": VERSION, "digest": digest, "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "docker": docker_outputs(listing, image_ref, network, names, base), "files": state_files(state_dir)}


def same_record(a, b):
    """Whether two records say the same (the time they were taken aside)."""
    strip = lambda r: {k: v for k, v in (r or {}).items() if k != "at"}  # noqa: E731
    return strip(a) == strip(b)


def verdict(record, digest, listing, image_ref, network, names, state_dir, base=""):
    """``(settled, reason)``: whether the record still describes this cluster for these inputs."""
    if not record or record.get("version") != VERSION:
        return False, "no record of a run that brought every stage up"
    if record.get("digest") != digest:
        return False, "a setting or a project file changed since %s" % record.get("at")
    now = docker_outputs(listing, image_ref, network, names, base)
    was = record.get("docker") or {}
    if now["base"] != was.get("base"):
        return False, "the base image %s is not the one recorded" % (base or "(label mtrt.role=base)")
    if not now["image"] or now["image"] != was.get("image"):
        return False, "the node image %s is not the one recorded" % image_ref
    if not now["network"] or now["network"] != was.get("network"):
        return False, "the network %s is not the one recorded" % network
    for name in names:
        have, had = now["containers"].get(name), (was.get("containers") or {}).get(name)
        if not have or not had or have["id"] != had["id"]:
            return False, "node container %s is not the one recorded" % name
        if have["state"] != "running":
            return False, "node container %s is %s" % (name, have["state"])
        if have.get("image") != now["image"]:
            return False, "node container %s runs another image" % name
    if set((was.get("containers") or {})) != set(names):
        return False, "the nodes changed"
    files = state_files(state_dir)
    for rel, want in (record.get("files") or {}).items():
        if files.get(rel) != want:
            return False, "%s changed since it was written" % rel
    return True, "unchanged since %s" % record.get("at")


def read_record(state_dir):
    try:
        with open(record_path(state_dir), encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None
