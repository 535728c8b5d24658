"""The `transform` stage: apply the planned actions, unit by unit, and write each sink.

`Transforming` takes each group as soon as it is planned (the body is walked
once); a surrogate collision repeats only this stage and `store`, over the same
groups (`Units.again()`) with the same plan, never detection. Whole-value field rules use the same action classes as
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
    run = Transforming(policy, vendor, keys, collisions)
    for group in groups:
        run.add(group, plan, dropped)
    return run.result()


class Transforming:
    """The transform stage, a group at a time: `protect` feeds each group as soon as it is
    planned, so a large body is walked once; `result()` is the stage's value. The state is
    this stage's own, never handed to another."""

    def __init__(self, policy: Policy, vendor: str, keys: KeyProvider, collisions: Mapping[str, int]):
        self.vendor, self.keys, self.collisions = vendor, keys, collisions
        self.reversible = compiled(policy).reversible_types
        self.outputs: dict[str, bytearray] = {}
        self.changed: set[str] = set()
        self.issued: list[Issued] = []
        self.replacements: list[Replacement] = []
        self.actions: Counter = Counter()
        self.literals: set[str] = set()
        self.passed: list[dict] = []
        self.fakes: list[Issued] = []  # issued surrogates that are not token-shaped, for `caller_literals`
        self.number = 0
        self.task = -1
        self.left_out: list[int] = []

    def add(self, group: list[Unit], plan: Plan, dropped: frozenset[int] | set[int]) -> None:
        start = len(self.issued)
        for unit in group:
            self.number += 1
            self.task += unit.drop is not None
            if self.number - 1 in dropped:  # `on_block: drop_task`: the task is left out of the batch
                self.outputs.setdefault(unit.sink, bytearray()).extend(unit.drop())
                self.changed.add(unit.sink)
                self.actions["drop_task"] += 1
                self.left_out.append(self.task)
                continue
            done = transform_unit(unit, plan.get(self.number - 1, {}), self.vendor, self.keys, self.collisions)
            self.issued.extend(done.issued)
            self.replacements.extend(done.replacements)
            self.actions.update(done.actions)
            if unit.passed:
                self.passed.extend(unit.passed if isinstance(unit.passed, list) else [unit.passed])
            self.outputs.setdefault(unit.sink, bytearray()).extend(unit.emit(done.replaced))
            if done.replaced or unit.altered:
                self.changed.add(unit.sink)
        self.fakes.extend(i for i in self.issued[start:]
                          if find_tokens(i.surrogate, self.reversible) != {i.surrogate})
        self.literals |= caller_literals((f.text for unit in group for f in unit.fields), self.reversible, self.fakes)

    def result(self) -> Transformed:
        return Transformed({s: b for s, b in self.outputs.items() if s in self.changed}, tuple(self.issued),
                           tuple(self.replacements), self.actions, frozenset(self.literals), tuple(self.passed),
                           tuple(self.left_out))


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
