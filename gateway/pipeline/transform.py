"""The `transform` stage: apply the planned actions, unit by unit, and write each sink.

Runs over the same groups the detect stage saw (`Units.again()`), with the plan
it produced, so a surrogate collision only repeats this stage and `store`,
never detection. Whole-value field rules use the same action classes as
findings.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from gateway.actions import ActionContext, get_action
from gateway.actions.fpe import FPEDomainTooSmall
from gateway.keys import KeyProvider
from gateway.payload.units import Unit
from gateway.pipeline.compiled import compiled
from gateway.pipeline.decide import Planned
from gateway.pipeline.flow import Replacement, Transformed
from gateway.pipeline.store import caller_literals
from gateway.policy import Policy
from gateway.refusal import Refusal
from gateway.reversible.tokens import Issued, TokenError, find_tokens

# unit number in the request -> field number in the unit -> planned spans
Plan = Mapping[int, Mapping[int, list[Planned]]]


class ActionFailed(Refusal):
    """An action could not protect a value (e.g. too few digits for fpe); the
    request is refused. Names the type and action, never the value."""

    def __init__(self, entity_type: str, action: str, reason: str):
        super().__init__(403, f"action {action!r} cannot protect a {entity_type} value ({reason}); request not forwarded",
                         outcome="blocked", entity_types=[entity_type])


def transform_text(text: str, planned: Iterable[Planned], vendor: str, keys: KeyProvider,
                   collisions: Mapping[str, int], path: str = "",
                   related: tuple[str, ...] = ()) -> tuple[str, list[Issued], list[Replacement]]:
    """One text with its planned spans replaced: the new text, what was issued, what was replaced.
    `related`: the unit's other values under `consistent` (see `ActionContext`)."""
    out: list[str] = []
    issued: list[Issued] = []
    replaced: list[Replacement] = []
    cursor = 0
    for p in sorted(planned, key=lambda p: p.start):
        ctx = ActionContext(vendor=vendor, entity_type=p.entity_type, keys=keys, options=p.action.options,
                            collisions=collisions, related=related, also=p.also)
        value = text[p.start:p.end]
        try:
            result = get_action(p.action.action).apply(value, ctx)
        except (FPEDomainTooSmall, TokenError) as exc:
            raise ActionFailed(p.entity_type, p.action.action, str(exc)) from None
        except ValueError as exc:
            raise ActionFailed(p.entity_type, p.action.action, type(exc).__name__) from None
        out.append(text[cursor:p.start])
        out.append(result.text)
        issued.extend(result.issued)
        replaced.append(Replacement(p.entity_type, p.action.action, value, result.text, path, p.start))
        cursor = p.end
    out.append(text[cursor:])
    return "".join(out), issued, replaced


def transform(groups: Iterator[list[Unit]], plan: Plan, policy: Policy, vendor: str, keys: KeyProvider,
              collisions: Mapping[str, int], dropped: frozenset[int] = frozenset()) -> Transformed:
    outputs: dict[str, bytearray] = {}
    changed: set[str] = set()
    issued: list[Issued] = []
    replacements: list[Replacement] = []
    actions: Counter = Counter()
    literals: set[str] = set()
    passed: list[dict] = []
    fakes: list[Issued] = []  # issued surrogates that are not token-shaped, for `caller_literals`
    reversible = compiled(policy).reversible_types
    number = 0
    task = -1
    left_out: list[int] = []
    for group in groups:
        start = len(issued)
        for unit in group:
            number += 1
            task += unit.drop is not None
            if number - 1 in dropped:  # `on_block: drop_task`: the task is left out of the batch
                outputs.setdefault(unit.sink, bytearray()).extend(unit.drop())
                changed.add(unit.sink)
                actions["drop_task"] += 1
                left_out.append(task)
                continue
            done = transform_unit(unit, plan.get(number - 1, {}), vendor, keys, collisions)
            issued.extend(done.issued)
            replacements.extend(done.replacements)
            actions.update(done.actions)
            if unit.passed:
                passed.extend(unit.passed if isinstance(unit.passed, list) else [unit.passed])
            outputs.setdefault(unit.sink, bytearray()).extend(unit.emit(done.replaced))
            if done.replaced or unit.altered:
                changed.add(unit.sink)
        fakes.extend(i for i in issued[start:] if find_tokens(i.surrogate, reversible) != {i.surrogate})
        literals |= caller_literals((f.text for unit in group for f in unit.fields), reversible, fakes)
    return Transformed({s: b for s, b in outputs.items() if s in changed}, tuple(issued), tuple(replacements),
                       actions, frozenset(literals), tuple(passed), tuple(left_out))


@dataclass(frozen=True)
class UnitDone:
    replaced: dict[int, str]  # field number -> new text, for `Unit.emit`
    issued: list[Issued]
    replacements: list[Replacement]
    actions: Counter


def transform_unit(unit: Unit, spans: Mapping[int, list[Planned]], vendor: str, keys: KeyProvider,
                   collisions: Mapping[str, int]) -> UnitDone:
    """One unit's fields: whole-value rule actions, then the planned spans of scanned fields."""
    replaced: dict[int, str] = {}
    issued: list[Issued] = []
    replacements: list[Replacement] = []
    actions: Counter = Counter(unit.counts)
    related = _people(unit, spans)
    for i, rule in enumerate(unit.actions):
        text = unit.fields[i].text
        path = unit.fields[i].path
        if rule is not None:
            whole = [Planned(0, len(text), rule.entity_type, rule.spec)]
            try:
                new, got, done = transform_text(text, whole, vendor, keys, collisions, path)
            except Exception as exc:
                raise Refusal(422, f"field rule {rule.label!r}: {rule.spec.action} cannot be applied to this "
                                   f"value ({type(exc).__name__})") from None
            actions[rule.spec.action] += 1
        elif i in spans:
            new, got, done = transform_text(text, spans[i], vendor, keys, collisions, path, related)
        else:
            continue
        issued.extend(got)
        replacements.extend(done)
        if new != text:
            replaced[i] = new
    return UnitDone(replaced, issued, replacements, actions)


def _people(unit: Unit, spans: Mapping[int, list[Planned]]) -> tuple[str, ...]:
    """The unit's PERSON values under `consistent` (PERSON by any detector), and the name two values
    under it make with a PERSON among them when only a space or ", " separates them ("Gonzalez, Maria"
    found as two values, one perhaps typed otherwise): `ActionContext.related`."""
    found: list[str] = []
    for i, planned in spans.items():
        text = unit.fields[i].text
        named = sorted((p for p in planned if p.action.action == "consistent"), key=lambda p: p.start)
        person = [p.entity_type == "PERSON" or "PERSON" in p.also for p in named]
        found += [text[p.start:p.end] for p, yes in zip(named, person) if yes]
        found += [text[a.start:b.end] for (a, b), yes in zip(zip(named, named[1:]), zip(person, person[1:]))
                  if any(yes) and text[a.end:b.start] in (" ", ", ")]
    return tuple(found)
