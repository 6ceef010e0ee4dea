# SPDX-License-Identifier: Apache-2.0
"""Sections of the cluster stages: preflight, node containers, SSH mesh, the stage-99 summary."""

from __future__ import annotations

from ..mdtext import bullets, code
from . import renderer


@renderer("preflight", title="Preflight")
def preflight(data, where=None):
    problems = data.get("problems") or []
    checked = data.get("checked") or {}
    lines = ["Preflight %s." % ("OK: no problems" if data.get("ok") and not problems
                                else "found %d problem(s)" % len(problems)), ""]
    if checked:
        lines += ["Checked: %s." % ", ".join(
            "%s %s" % (k, ", ".join(map(str, v)) or "none" if isinstance(v, list) else v)
            for k, v in checked.items()), ""]
    return lines + bullets("Problem", problems)


@renderer("node_containers", title="Node containers")
def node_containers(data, where=None):
    entries = [e for e in data.get("containers") or [] if isinstance(e, dict)]
    counts = data.get("counts") or {}
    lines = ["%s; decided from %s in %s s." % (
        ", ".join("%s %d" % (k, v) for k, v in sorted(counts.items())) or "no containers",
        "preflight's listing (no module run)" if data.get("decided_from") == "listing" else "docker",
        data.get("duration_s")), ""]
    if data.get("created_dirs"):
        lines += ["Created: %s." % ", ".join(code(d) for d in data["created_dirs"]), ""]
    changed = [e for e in entries if e.get("action") not in (None, "none")]
    for entry in changed:
        lines.append("- %s: %s (%s)%s" % (entry.get("name"), entry.get("action"), "; ".join(entry.get("reasons") or []),
                                          "" if entry.get("ok", True) else " FAILED: %s" % entry.get("error")))
    return lines + [""] if changed else lines


@renderer("ssh_mesh", title="SSH mesh")
def ssh_mesh(data, where=None):
    def ok_count(entries):
        entries = [e for e in entries or [] if isinstance(e, dict)]
        return "%d/%d OK" % (sum(1 for e in entries if e.get("ok")), len(entries))

    failed = data.get("failed_peers") or []
    via_ring = sum(1 for e in data.get("direct") or [] if isinstance(e, dict) and e.get("via") == "ring")
    lines = ["Direct: %s%s; ring: %s; failed: %s; %s s." % (
        ok_count(data.get("direct")), " (%d as first hops of the ring)" % via_ring if via_ring else "",
        ok_count(data.get("ring")) if data.get("ring") else "not checked",
        ", ".join(failed) or "none", data.get("duration_s")), ""]
    bad = [e for e in (data.get("direct") or []) + (data.get("ring") or [])
           if isinstance(e, dict) and not e.get("ok")]
    for entry in bad:
        lines.append("- %s: %s Fix: %s" % (" -> ".join(entry.get("hops") or []), entry.get("cause"),
                                            entry.get("fix")))
    return lines + [""] if bad else lines


def cluster_sentence(cluster):
    """``Cluster mtrt (docker mode): 2 nodes node1=192.168.123.111, ...; network ...; shared ...``."""
    nodes = [n for n in cluster.get("nodes") or [] if isinstance(n, dict)]
    text = "Cluster %s (%s mode): %d node%s %s" % (
        cluster.get("name"), cluster.get("mode"), len(nodes), "" if len(nodes) == 1 else "s",
        # The node's address; local mode has none, so the host mpirun reaches it by (localhost).
        ", ".join("%s=%s" % (n.get("name"), n.get("ip") or n.get("mpi_host") or "-") for n in nodes))
    network = cluster.get("network") or {}
    if network.get("name"):
        text += "; network %s %s" % (network["name"], network.get("subnet") or "")
    shared = cluster.get("shared") or {}
    if shared.get("host_dir"):
        text += "; shared dir %s -> %s" % (shared["host_dir"], shared.get("mount"))
    if cluster.get("launcher"):
        text += "; launcher %s" % cluster["launcher"]
    return text.rstrip() + "."


@renderer("run_summary", title="Cluster")
def run_summary(data, where=None):
    return [cluster_sentence(data.get("cluster") or {}), ""]
