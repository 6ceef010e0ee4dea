# SPDX-License-Identifier: Apache-2.0
"""What never reaches a report: results hidden by ``no_log``, Ansible's internals, private keys."""

from __future__ import annotations

import re

REDACTED = "<redacted private key>"
_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)",
    re.DOTALL,
)
# Keys of a module result that describe the call, not its outcome.
_INTERNAL = ("invocation", "exception")


def scrub(value):
    """Return ``value`` with every private-key block in any string redacted."""
    if isinstance(value, str):
        return _PRIVATE_KEY.sub(REDACTED, value) if "PRIVATE KEY" in value else value
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    return value


def is_censored(res):
    """True for a result hidden by ``no_log`` (never to be reported)."""
    return isinstance(res, dict) and bool(res.get("censored") or res.get("_ansible_no_log"))


def clean_result(res):
    """A project module result fit for a report: no internals, no secrets, and none of the bulky data a
    result hands on to later stages only (the keys it lists in ``mtrt_handoff``)."""
    handoff = set(res.get("mtrt_handoff") or ())
    return scrub({k: v for k, v in res.items()
                  if not k.startswith("_ansible") and k not in _INTERNAL and k not in handoff and k != "mtrt_handoff"})
