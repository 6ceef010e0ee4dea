# SPDX-License-Identifier: Apache-2.0
"""Why ranks did not answer: from the ranks that never printed to their host, the host's state, and its last lines.

Plain Python on data the controller reads: a failed launch's result (``expected_placement``,
``ranks_silent``, ``ranks_signalled``, ``rank_tails``, ``timed_out``), each node's state as docker
records it (``docker inspect``'s ``State``, the ``oom`` events of the launch's time and the last
lines of its log) or as the ssh check found it
(``ssh_mesh_check``'s ``direct`` entries), and the nodes (``cluster_nodes``). The result is one row
per node whose ranks did not answer (or died on a signal), and one sentence per row for the failure
message.
"""

from __future__ import annotations

from mpi_trt_ansible.rules import ranges


def _node_of(host, nodes):
    """The inventory node a hostfile host name stands for (by mpi_host, name or address)."""
    for node in nodes:
        if host in (node.get("mpi_host"), node.get("name"), node.get("ip")):
            return node["name"]
    if len(nodes) == 1 and host not in [n.get("name") for n in nodes]:
        return nodes[0]["name"]  # local mode: ranks report the machine's own name
    return host


def ranks_by_node(result, nodes, silent_only=True):
    """``{node: [ranks]}`` of the ranks that never printed, or (``silent_only=False``) of every rank."""
    placement = {int(r): h for r, h in (result.get("expected_placement") or {}).items()}
    ranks = result.get("ranks_silent") if silent_only else sorted(placement)
    out = {}
    for rank in sorted(ranks or []):
        host = placement.get(rank)
        if host is not None:
            out.setdefault(_node_of(host, nodes), []).append(rank)
    return out


def silent_by_node(result, nodes):
    """``{node: [ranks]}`` of the ranks that never printed."""
    return ranks_by_node(result, nodes, silent_only=True)


def signalled_by_node(result, nodes):
    """``{node: [ranks]}`` of the ranks mpirun saw die on a signal (``ranks_signalled``: a rank may
    print and then be OOM-killed; its node is looked at like a silent one's)."""
    out = {}
    placement = {int(r): h for r, h in (result.get("expected_placement") or {}).items()}
    for entry in result.get("ranks_signalled") or []:
        try:
            rank = int(entry.get("rank"))
        except (TypeError, ValueError):
            continue
        host = entry.get("host") or placement.get(rank)
        if host:
            ranks = out.setdefault(_node_of(host, nodes), [])
            if rank not in ranks:
                ranks.append(rank)
    return {node: sorted(ranks) for node, ranks in out.items()}


def candidates(result, nodes):
    """``{node: [ranks]}`` to look at for a failed launch: the nodes of its silent ranks and of ranks that
    died on a signal, or (timed out) every node with ranks."""
    timed_out = bool(result.get("timed_out"))
    out = ranks_by_node(result, nodes, silent_only=not timed_out)
    for node, ranks in signalled_by_node(result, nodes).items():
        out[node] = sorted(set(out.get(node, [])) | set(ranks))
    return out


def hang_only(result, table, ssh):
    """Whether a timed-out launch hung with every node fine: docker says each runs (or there is no docker)
    and each checked ssh hop answered. Then the SSH mesh check and a second launch cannot help."""
    if not result.get("timed_out"):
        return False
    for row in table or []:
        if row["state"] not in ("running", "reachable", "unknown") or row["oom_killed"]:
            return False
        if row["ssh"] and not row["ssh"].startswith("ssh answers"):
            return False
    return all(hop.get("ok") for hop in (ssh or {}).values())


def docker_state(inspect, oom_events=0):
    """(state, exit_code, oom_killed, words) from ``docker inspect``'s dict (None: no such container) and
    the number of ``oom`` events docker recorded for the container during the launch (a process the
    kernel's OOM killer chose inside a container that runs on: docker inspect's OOMKilled only tells
    of the container's main process)."""
    if inspect is None:
        return "missing", None, False, "has no container (removed)"
    state = inspect.get("State") or {}
    status = state.get("Status") or ("running" if state.get("Running") else "unknown")
    code, oom = state.get("ExitCode"), bool(state.get("OOMKilled")) or bool(oom_events)
    if status == "paused" or state.get("Paused"):
        return "paused", code, oom, "is paused (docker pause): every process in it is frozen"
    if state.get("Restarting") or status == "restarting":
        return "restarting", code, oom, "is restarting (exit code %s)" % code
    if status in ("exited", "dead", "created"):
        why = "was OOM-killed by the kernel" if oom else "exited with code %s" % code
        return status, code, oom, "is not running: it %s%s" % (
            why, " (%s)" % state["Error"] if state.get("Error") else "")
    if oom:
        limit = (inspect.get("HostConfig") or {}).get("Memory") or 0
        return status, code, oom, "runs, but a process in it was OOM-killed by the kernel (memory limit %s)" % (
            "%d MiB" % (limit // 1048576) if limit else "none")
    return status, code, oom, "runs"


def rows(result, nodes, candidates, inspects=None, logs=None, ssh=None, oom_events=None):
    """One row per node that explains the failure: {host, ranks, state, exit_code, oom_killed, words, ssh,
    ssh_fix, fix, log_tail}.

    ``candidates``: {node: [ranks]} looked at; a node is listed when its ranks never printed or died on a
    signal, docker says it is not simply running (or OOM-killed a process in it), or ssh to it fails.
    ``inspects``: {node: docker inspect dict or None} (docker mode); ``logs``: {node: [last lines]};
    ``ssh``: {node: ssh_mesh_check direct entry}; ``oom_events``: {node: docker oom events in the launch}.
    """
    out = []
    tails = result.get("rank_tails") or {}
    silent = silent_by_node(result, nodes)
    for node, ranks in signalled_by_node(result, nodes).items():
        silent.setdefault(node, []).extend(r for r in ranks if r not in silent.get(node, []))
    for node, ranks in candidates.items():
        state, code, oom, words = ("unknown", None, False, "")
        if inspects is not None:
            state, code, oom, words = docker_state(inspects.get(node), (oom_events or {}).get(node, 0))
        hop = (ssh or {}).get(node)
        ssh_words = ""
        if hop is not None:
            ssh_words = "ssh answers" if hop.get("ok") else "ssh fails: %s" % (hop.get("cause") or "no answer")
        if state == "unknown" and hop is not None:
            state = "reachable" if hop.get("ok") else "unreachable"
        if node not in silent and state in ("running", "reachable", "unknown") and not oom:
            continue  # its ranks answered and nothing is wrong with it
        last = [line for r in ranks for line in (tails.get(str(r)) or [])][-5:]
        out.append({"host": node, "ranks": ranks, "state": state, "exit_code": code, "oom_killed": oom,
                    "words": words, "ssh": ssh_words, "ssh_fix": (hop or {}).get("fix") if hop else None,
                    "log_tail": last or list((logs or {}).get(node) or [])[-5:]})
    for row in out:
        row["fix"] = _fix(row)
    # A node that is down explains the silence of the others (no rank starts before every daemon is up).
    broken = [r for r in out if r["state"] not in ("running", "reachable", "unknown") or r["oom_killed"]
              or (r["ssh"] and not r["ssh"].startswith("ssh answers"))]
    return broken or out


def sentences(table):
    """The failure message's part about the nodes: one sentence per row, with what to do."""
    out = []
    for row in table:
        text = "rank(s) %s on %s" % (ranges(row["ranks"]), row["host"])
        what = [w for w in (("%s %s" % (row["host"], row["words"])) if row["words"] else "", row["ssh"]) if w]
        if what:
            text += ": " + "; ".join(what)
        fix = row.get("fix") if "fix" in row else _fix(row)
        if fix:
            text += " (%s)" % fix
        out.append(text)
    return out


def _fix(row):
    host, state = row["host"], row["state"]
    if state == "paused":
        return "docker unpause %s, or re-run site.yml, which unpauses it" % host
    if row["oom_killed"]:
        return "give %s more memory (its container's limit) or load less onto it" % host
    if state in ("exited", "dead", "created", "missing", "restarting"):
        return "re-run site.yml, which starts (or recreates) %s" % host
    if row.get("ssh_fix"):
        return row["ssh_fix"]
    return ""
