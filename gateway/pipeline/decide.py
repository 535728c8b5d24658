"""Decide, per policy, what happens to each finding.

Overlapping findings are merged into one span (their union, so no character
of either leaks) and take the action of the strongest finding; `allow` loses
to any other action. Any finding whose action is `block` blocks the request.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from gateway.detection.finding import Finding
from gateway.policy import ActionSpec, Policy


@dataclass(frozen=True)
class Planned:
    start: int
    end: int
    entity_type: str
    action: ActionSpec
    also: frozenset[str] = frozenset()  # the other types merged findings gave the span ("Kenji": LOCATION, PERSON)


@dataclass(frozen=True)
class Decision:
    """The `decide` stage: per text index, the spans to replace and how; counts for the audit."""

    blocked_types: list[str] = field(default_factory=list)
    plans: dict[int, list[Planned]] = field(default_factory=dict)
    findings: Counter = field(default_factory=Counter)
    actions: Counter = field(default_factory=Counter)

    @property
    def blocked(self) -> bool:
        return bool(self.blocked_types)


def decide(findings_per_field: list[list[Finding]], policy: Policy) -> Decision:
    plans: dict[int, list[Planned]] = {}
    found: Counter = Counter()
    actions: Counter = Counter()
    blocked: set[str] = set()
    for index, findings in enumerate(findings_per_field):
        if not findings:  # most fields of a batch
            continue
        for f in findings:
            found[f.entity_type] += 1
            if policy.action_for(f.entity_type).action == "block":
                blocked.add(f.entity_type)
        planned = _merge(findings, policy)
        if planned:
            plans[index] = planned
            actions.update(p.action.action for p in planned)
    return Decision(sorted(blocked), plans, found, actions)


def _rank(f: Finding, policy: Policy) -> tuple:
    return (policy.action_for(f.entity_type).action != "allow", f.score, f.end - f.start)


def _merge(findings: list[Finding], policy: Policy) -> list[Planned]:
    clusters: list[list[Finding]] = []
    end = -1
    for f in sorted(findings, key=lambda f: (f.start, -f.end)):
        if clusters and f.start < end:
            clusters[-1].append(f)
            end = max(end, f.end)
        else:
            clusters.append([f])
            end = f.end
    planned = []
    for cluster in clusters:
        best = max(cluster, key=lambda f: _rank(f, policy))
        start, stop = min(f.start for f in cluster), max(f.end for f in cluster)
        also = frozenset(f.entity_type for f in cluster) - {best.entity_type}
        planned.append(Planned(start, stop, best.entity_type, policy.action_for(best.entity_type), also))
    return planned
