# SPDX-License-Identifier: Apache-2.0
"""The block every mpirun launch result gets, whatever its kind (module_utils/mtrt_launch.py's keys).

What a person needs when a launch went wrong, in this order: how it ended and which ranks
never printed (and where they were placed), processes that could not be killed, the known
errors with their cause and fix beside the raw line, the ranks that did not answer traced
to their node's state and log (``diagnosis``, added on the controller), each rank's last
lines, mpirun's own error output, and the command. A launch that went right gets one line.
"""

from __future__ import annotations

from mpi_trt_ansible import diagnose
from mpi_trt_ansible.rules import ranks_on_hosts

from ..mdtext import code, fence, lines_cell, rank_ranges, raw, table

RANK_ROWS = 8
MPIRUN_LINES = 20


def is_launch(data):
    """Whether ``data`` is the result of an mpirun launch."""
    return isinstance(data, dict) and "expected_placement" in data


def went_wrong(data):
    if data.get("detached"):  # a server that keeps running: rc stays null while it does
        return bool(data.get("timed_out") or data.get("rc") not in (0, None) or data.get("problems")
                    or data.get("diagnosis"))
    return bool(data.get("timed_out") or data.get("rc") not in (0, None) or data.get("problems")
                or data.get("ranks_silent") and data.get("rc") not in (0,) or data.get("diagnosis"))


def _placement_line(data):
    placement = data.get("expected_placement") or {}
    hosts = ranks_on_hosts(placement.keys(), placement) if placement else "no hosts"
    return "np %s (%s)" % (data.get("np"), hosts)


def _ending(data):
    if data.get("timed_out"):
        return "timed out after %s s and was killed" % data.get("duration_s")
    if data.get("detached") and data.get("rc") is None:
        if data.get("pid"):
            return "runs detached (mpirun pid %s)" % data["pid"]
        return "not running"
    if data.get("rc") is None:
        return "not started"
    return "mpirun exited %s after %s s" % (data.get("rc"), data.get("duration_s"))


def node_state(entry):
    """One cell from a diagnosis row (mpi_trt_ansible.diagnose.rows): what docker (or the ssh check)
    says of the node, e.g. ``is not running: it exited with code 137; ssh fails: connection refused``."""
    text = str(entry.get("words") or "")
    if not text:
        text = str(entry.get("state") or "unknown")
        extra = []
        if entry.get("exit_code") is not None and text in ("exited", "dead", "restarting", "created"):
            extra.append("code %s" % entry["exit_code"])
        if entry.get("oom_killed"):
            extra.append("OOM-killed")
        text += " (%s)" % ", ".join(extra) if extra else ""
    ssh = str(entry.get("ssh") or "")
    if ssh and not ssh.startswith("ssh answers"):
        text += "; " + ssh
    return text


def what_to_do(entry):
    """The fix of a diagnosis row (mpi_trt_ansible.diagnose.rows gives every row one)."""
    return entry.get("fix") or entry.get("ssh_fix") or ""


def diagnosis_table(diagnosis):
    """The ONE table: ranks that did not answer -> host -> that node's state -> what to do -> its last log lines."""
    rows = [[rank_ranges(d.get("ranks")) or "-", d.get("host"), node_state(d), what_to_do(d),
             raw(lines_cell(d.get("log_tail")))]
            for d in diagnosis if isinstance(d, dict)]
    return ["Ranks that did not answer, traced to their node:", ""] + table(
        ["Ranks", "Host", "Node state", "What to do", "Last log lines"], rows)


def nodes_cell(entries):
    """What a launch left on its nodes and was stopped there (``stopped_on_nodes``), as one text:
    ``fnode2: stopped orted (pid 41), python3 (pid 47); fnode1: nothing left``."""
    parts = []
    for entry in entries or []:
        if not isinstance(entry, dict):
            continue
        if entry.get("error"):
            parts.append("%s: not reached (%s)" % (entry.get("host"), entry["error"]))
            continue
        stopped = [p for p in entry.get("stopped") or [] if isinstance(p, dict)]
        text = "%s: %s" % (entry.get("host"), "stopped " + ", ".join(
            "%s (pid %s)" % (str(p.get("cmd") or "?").split(" ")[0].rsplit("/", 1)[-1], p.get("pid"))
            for p in stopped) if stopped else "nothing left")
        if entry.get("left_running"):
            text += ", STILL RUNNING: pids %s" % ", ".join(map(str, entry["left_running"]))
        parts.append(text)
    return "; ".join(parts)


def explained_table(explained):
    rows = [[e.get("cause"), e.get("fix"), raw(code(str(e.get("raw") or "")).replace("|", "\\|"))]
            for e in explained if isinstance(e, dict)]
    return ["Known errors, explained:", ""] + table(["Cause", "Fix", "Raw line"], rows)


def render_launch(data, shown_above=False):
    """The launch block of a result (empty for one that is not a launch).

    ``shown_above``: its explained errors and diagnosis are in the Failures section already.
    """
    if not is_launch(data):
        return []
    placement = data.get("expected_placement") or {}
    silent = data.get("ranks_silent") or []
    wrong = went_wrong(data)
    if not wrong:
        if data.get("detached"):
            return ["Launch: %s; %s." % (_placement_line(data), _ending(data)), ""]
        return ["Launch: %s; %s; every rank printed." % (_placement_line(data), _ending(data)), ""]
    text = "Launch: %s; %s" % (_placement_line(data), _ending(data))
    if silent:
        text += "; ranks that never printed: %s" % ranks_on_hosts(silent, placement)
    lines = [text + ".", ""]
    if data.get("left_running"):
        lines += ["Left running (could not be killed): pids %s." % ", ".join(map(str, data["left_running"])), ""]
    if data.get("stopped_on_nodes"):
        lines += ["On its nodes after the timeout (found by the launch's own markers, never by name): %s."
                  % nodes_cell(data["stopped_on_nodes"]), ""]
    if shown_above and (data.get("explained") or data.get("diagnosis")):
        lines += ["Explained errors and the ranks that did not answer: under Failures above.", ""]
    else:
        if data.get("explained"):
            lines += explained_table(data["explained"])
        if data.get("diagnosis"):
            lines += diagnosis_table(data["diagnosis"])
    tails = data.get("rank_tails") or {}
    if tails:
        shown = sorted(tails, key=lambda r: int(r) if str(r).isdigit() else 0)[:RANK_ROWS]
        lines += ["Each rank's last lines%s:" % (" (first %d of %d ranks)" % (RANK_ROWS, len(tails))
                                                 if len(tails) > RANK_ROWS else ""), ""]
        lines += table(["Rank", "Host", "Last lines"],
                       [[r, placement.get(str(r), "?"), raw(lines_cell(tails[r]))] for r in shown])
    own = [line for line in str(data.get("stderr_tail") or "").splitlines() if line.strip()][-MPIRUN_LINES:]
    if own:
        lines += ["mpirun's error output (last %d lines):" % len(own), ""] + fence("\n".join(own)) + [""]
    if data.get("command"):
        lines += ["Command: %s" % code(" ".join(map(str, data["command"]))), ""]
    return lines
