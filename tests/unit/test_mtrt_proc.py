# SPDX-License-Identifier: Apache-2.0
"""run_bounded: the bound holds for the whole process tree, whatever holds the output pipes."""

import os
import time

import pytest
from ansible.module_utils import mtrt_proc
from ansible.module_utils.mtrt_proc import run_bounded

# What a bounded run may take beyond its bound: SIGTERM grace, then the drain of the output.
SLACK_S = mtrt_proc.KILL_GRACE_S + mtrt_proc.DRAIN_S + 2.0


def _gone(pids):
    time.sleep(0.1)
    return [p for p in pids if mtrt_proc._alive(p)]


def _find(marker):
    """pids whose command line holds ``marker`` (a sleep duration no other test uses)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/cmdline" % entry, "rb") as handle:
                    if handle.read().split(b"\0")[:2] == [b"sleep", marker.encode()]:
                        found.append(int(entry))
            except OSError:
                pass
    return found


def test_an_escaped_process_holding_the_output_does_not_stall_the_caller():
    """The audit's reproduction: the shell ends at once, a setsid'd child keeps its stdout for 20 s."""
    started = time.monotonic()
    run = run_bounded(["sh", "-c", "setsid sleep 20.5 & echo x"], 5)
    took = time.monotonic() - started
    assert took < 5 + SLACK_S, "took %.1f s with a 5 s bound" % took
    assert (run["rc"], run["stdout"], run["timed_out"]) == (0, "x\n", False)
    assert run["stopped"] and _gone(run["stopped"]) == [] and _find("20.5") == []


def test_at_the_deadline_the_session_and_what_left_it_are_killed():
    started = time.monotonic()
    run = run_bounded(["sh", "-c", "setsid sleep 60.5 & echo started; sleep 60.25"], 2)
    took = time.monotonic() - started
    assert took < 2 + SLACK_S, took
    assert run["timed_out"] and run["rc"] is None and run["stdout"] == "started\n"
    assert len(run["stopped"]) >= 3 and run["left_running"] == []
    assert _find("60.5") == [] and _find("60.25") == []


def test_a_process_that_ignores_sigterm_is_killed_after_the_grace():
    started = time.monotonic()
    run = run_bounded(["sh", "-c", "trap '' TERM; echo a; sleep 61.5"], 1)
    took = time.monotonic() - started
    assert 1 + mtrt_proc.KILL_GRACE_S - 0.5 < took < 1 + SLACK_S, took
    assert run["timed_out"] and run["left_running"] == [] and _find("61.5") == []


@pytest.mark.parametrize("size", [10, 3_000_000])
def test_stdin_and_large_output_pass_through(size):
    text = "y" * size
    run = run_bounded(["cat"], 20, stdin_text=text)
    assert (run["rc"], len(run["stdout"]), run["timed_out"], run["stopped"]) == (0, size, False, [])


def test_exit_code_and_stderr_of_a_plain_command():
    run = run_bounded(["sh", "-c", "echo oops >&2; exit 3"], 5)
    assert (run["rc"], run["stderr"], run["stdout"], run["timed_out"]) == (3, "oops\n", "", False)
