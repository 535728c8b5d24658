"""What a field rule does to one field: the one answer every body reader uses.

The JSON, form, CSV and multipart readers find a field's rule (JSONPath,
`form:` name, column); `field_outcome` says what follows from it, so `drop`,
`allow`, `block` and whole-value actions mean the same in every format:

| rule | the field's value | outcome |
|---|---|---|
| none or `scan` | any | scanned by the detectors |
| `drop` | any | removed; counted as `drop` |
| `allow` | any | forwarded as is, unscanned; counted as `allow` |
| `block` | not blank | the request is refused, naming the rule |
| `block` | blank | forwarded as is |
| an action (`tokenize`, ...) | not empty | the whole value replaced by the action |
| an action | empty | forwarded as is |
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from gateway.policy.fields import FieldRule, WholeValue, whole_value


@dataclass(frozen=True)
class Outcome:
    verb: str                          # scan, drop, allow, block, keep or whole
    action: WholeValue | None = None   # for whole: the rule's action over the whole value
    blocked: str = ""                  # for block: the rule's label, never the value
    counts: Counter = field(default_factory=Counter)


SCAN = Outcome("scan")
KEEP = Outcome("keep")


def blank(value: Any) -> bool:
    """None, whitespace, or an empty container."""
    if value is None:
        return True
    if isinstance(value, (str, bytes)):
        return not value.strip()
    if isinstance(value, (list, tuple, dict)):
        return not value
    return False


def field_outcome(rule: FieldRule | None, value: Any) -> Outcome:
    verb = rule.verb if rule is not None else "scan"
    if verb == "scan":
        return SCAN
    if verb in ("drop", "allow"):
        return Outcome(verb, counts=Counter({verb: 1}))
    if verb == "block":
        return KEEP if blank(value) else Outcome("block", blocked=rule.label)
    return KEEP if value in ("", b"") else Outcome("whole", whole_value(rule))
