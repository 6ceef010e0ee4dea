# SPDX-License-Identifier: Apache-2.0
"""Hand-offs between stages: facts set once on localhost, read through one accessor each.

docs/ARCHITECTURE.md, "Hand-offs": what one stage hands to the next is a fact an earlier play set once on
localhost, read only by the accessors of roles/cluster/defaults/main/90-derived.yml. The one exception is a
play's ``hosts:`` line where no accessor exists yet: the plays that include (not list) roles/cluster, whose
``hosts:`` Ansible templates before those defaults are loaded. A play that lists roles/cluster reads the
accessor there (Ansible templates ``hosts:`` with the defaults of the roles a play lists).
"""

import pathlib
import re

import pytest
import yaml
from conftest import ROOT

DERIVED = ROOT / "roles" / "cluster" / "defaults" / "main" / "90-derived.yml"
LOCALHOST = re.compile(r"""hostvars\s*(?:\[\s*['"]localhost['"]\s*\]|\.localhost\b)""")
FACT = re.compile(r"""hostvars\s*\[\s*['"]localhost['"]\s*\]\s*\[\s*['"]([a-z0-9_]+)['"]\s*\]""")
PROJECT = sorted(p for pattern in ("roles/**/*.yml", "roles/*/templates/*", "playbooks/*.yml", "site.yml")
                 for p in ROOT.glob(pattern) if p.is_file())


def _plays():
    for path in sorted((ROOT / "playbooks").glob("*.yml")):
        for play in yaml.safe_load(path.read_text()) or []:
            if isinstance(play, dict) and "hosts" in play:
                yield path, play


def _lists_cluster(play):
    return any((r if isinstance(r, str) else r.get("role")) == "cluster" for r in play.get("roles") or [])


def _without_hosts_lines(path):
    """The file's text with every play's hosts: value (one line or a folded block) left out."""
    lines, out, skipping = path.read_text().splitlines(), [], False
    for line in lines:
        if re.match(r"^(- )?  ?hosts:", line) or re.match(r"^  hosts:", line):
            skipping = line.rstrip().endswith((">-", "|", ">"))
            continue
        if skipping and (line.startswith("    ") or not line.strip()):
            continue
        skipping = False
        out.append(line)
    return "\n".join(out)


def test_roles_read_localhost_only_through_the_accessors():
    found = []
    for path in PROJECT:
        if path == DERIVED:
            continue
        text = _without_hosts_lines(path) if path.parent.name == "playbooks" else path.read_text()
        for lineno, line in enumerate(text.splitlines(), 1):
            if LOCALHOST.search(line.split("#", 1)[0]):
                found.append("%s:%d: %s" % (path.relative_to(ROOT), lineno, line.strip()))
    assert found == [], "read hostvars['localhost'] through an accessor of 90-derived.yml: %s" % found


def test_a_play_that_lists_the_project_defaults_reads_the_accessor_in_its_hosts_line():
    direct = ["%s: %s" % (path.relative_to(ROOT), play["name"]) for path, play in _plays()
              if _lists_cluster(play) and LOCALHOST.search(str(play["hosts"]))]
    assert direct == []
    including = ["%s: %s" % (path.relative_to(ROOT), play["name"]) for path, play in _plays()
                 if LOCALHOST.search(str(play["hosts"]))]
    # The plays that include the project defaults (they must load nothing where they match no host).
    assert all(not _lists_cluster(play) for path, play in _plays() if LOCALHOST.search(str(play["hosts"])))
    assert including, "the test found no hosts: line to check"


def _handoff_facts():
    """{fact: where it is read}: every fact of localhost that an accessor or a hosts: line reads."""
    facts = {name: "90-derived.yml" for name in FACT.findall(DERIVED.read_text())}
    for path, play in _plays():
        for name in FACT.findall(str(play["hosts"])):
            facts.setdefault(name, "%s hosts:" % path.name)
    return facts


def _setters(name):
    """The tasks (file:name) that set ``name`` with set_fact."""
    out = []
    for path in PROJECT:
        if not path.name.endswith(".yml") or "defaults" in path.parts:
            continue
        doc = yaml.safe_load(path.read_text())

        def walk(node):
            if isinstance(node, list):
                for item in node:
                    walk(item)
            elif isinstance(node, dict):
                for key in ("ansible.builtin.set_fact", "set_fact"):
                    if isinstance(node.get(key), dict) and name in node[key]:
                        out.append("%s: %s" % (path.relative_to(ROOT), node.get("name")))
                for value in node.values():
                    walk(value)

        walk(doc)
    return out


HANDOFFS = sorted(_handoff_facts())


def test_the_handoffs_are_found():
    assert {"preflight_stage_hosts", "hosts_preflight_stage_hosts", "trtllm_engine_built", "preflight_passed",
            "hosts_preflight_passed", "preflight_host_gpus", "hosts_preflight_gpus"} <= set(HANDOFFS)
    assert "hosts_preflight_stages_run" not in HANDOFFS


@pytest.mark.parametrize("fact", HANDOFFS)
def test_every_handoff_is_set_by_one_task(fact):
    assert len(_setters(fact)) == 1, "%s is set by %s" % (fact, _setters(fact) or "no task")


@pytest.mark.parametrize("fact", HANDOFFS)
def test_every_handoff_is_documented(fact):
    architecture = (ROOT / "docs" / "ARCHITECTURE.md").read_text().split("## Hand-offs between stages", 1)[1]
    table = architecture.split("\n## ", 1)[0]
    assert "`%s`" % fact in table, "docs/ARCHITECTURE.md's hand-off table lacks %s" % fact
    if fact not in ("preflight_passed", "hosts_preflight_passed"):
        assert "`%s`" % fact in (ROOT / "roles" / "cluster" / "README.md").read_text()


def test_every_accessor_is_documented_and_in_the_contract():
    text = DERIVED.read_text().split("# Hand-offs between stages", 1)[1]
    accessors = re.findall(r"^(cluster_[a-z0-9_]+):", text, re.M)
    assert len(accessors) >= 8
    contract = yaml.safe_load((ROOT / "roles" / "cluster" / "meta" / "contract.yml").read_text())
    options = contract["argument_specs"]["contract"]["options"]
    architecture = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    for name in accessors:
        assert name in options and "`%s`" % name in architecture, name
