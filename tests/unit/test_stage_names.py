# SPDX-License-Identifier: Apache-2.0
"""One name per stage, as the README's Stages section says: playbooks/NN_<role>.yml starts with the preflight
play, then runs role <role> under tag <role> in one play (stage 40: a second play for docker_per_host), and a
role's own modules are named <role> or <role>_<what>; cluster_files and host_files serve several stages."""

import re

import yaml

from conftest import PLUGINS, ROOT

TOOLS = {"cluster_files", "host_files", "cluster_dir_copy"}
# Stage 40's second play runs each machine's own node container where it stands (docker_per_host).
PLAYS = {"40_node_containers.yml": 2}
# Not a stage: teardown removes what stage 40 made, with stage 40's module.
NOT_STAGES = {"cluster", "teardown"}
OWN = {p.stem for p in (PLUGINS / "modules").glob("*.py")} | {p.stem for p in (PLUGINS / "action").glob("*.py")}


def _tasks(items):
    for task in items or []:
        yield task
        for key in ("block", "rescue", "always"):
            yield from _tasks(task.get(key))


def _roles_and_tags(play):
    roles, tags = set(), set(play.get("tags") or [])
    for entry in play.get("roles") or []:
        roles.add(entry["role"] if isinstance(entry, dict) else entry)
        tags |= set(entry.get("tags") or []) if isinstance(entry, dict) else set()
    for task in _tasks(play.get("tasks")):
        include = task.get("ansible.builtin.include_role") or task.get("ansible.builtin.import_role")
        if include:
            roles.add(include["name"])
    return roles, tags


def test_each_stage_playbook_is_preflight_then_its_role_under_its_tag():
    books = sorted(p for p in (ROOT / "playbooks").glob("[1-9][0-9]_*.yml") if p.name != "99_summary.yml")
    assert len(books) == 14
    for book in books:
        name = re.match(r"\d\d_(.+)\.yml$", book.name).group(1)
        first, *plays = yaml.safe_load(book.read_text())
        assert first == {"name": "Preflight", "ansible.builtin.import_playbook": "00_preflight.yml"}, book.name
        assert len(plays) == PLAYS.get(book.name, 1), book.name
        for play in plays:
            roles, tags = _roles_and_tags(play)
            assert name in roles and name in tags, (book.name, roles, tags)
            assert roles <= {"cluster", name}, (book.name, roles)


def test_each_role_runs_only_modules_of_its_name_and_the_shared_tools():
    wrong, seen = [], set()
    for role in sorted(p for p in (ROOT / "roles").iterdir() if (p / "tasks").is_dir()):
        if role.name in NOT_STAGES:
            continue
        for path in sorted((role / "tasks").glob("*.yml")):
            for task in _tasks(yaml.safe_load(path.read_text())):
                for module in set(task) & OWN:
                    seen.add(module)
                    if module not in TOOLS and module != role.name and not module.startswith(role.name + "_"):
                        wrong.append("%s: %s" % (path.relative_to(ROOT), module))
    assert wrong == []
    assert {"ssh_keys", "hosts_preflight_facts", "hosts_preflight", "ssh_mesh_check", "mpi_hello",
            "trtllm_inference_run", "host_files", "cluster_files"} <= seen
