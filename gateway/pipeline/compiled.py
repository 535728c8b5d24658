"""What the stages derive from one policy version, built once instead of per request.

Building the detection spec resolves paths and walks the company settings
(~0.2 ms), the reversible types walk every entity and field rule: a measurable
share of the event loop's time per request when done each time. A reloaded
policy is a new object, so its `Compiled` is built anew; the entry goes when
the policy object does.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field, replace
from pathlib import Path

from gateway.detection.entities import NER_ALSO, NER_ENTITIES
from gateway.detection.spec import DetectionSpec
from gateway.payload.formats import Shape
from gateway.policy import Policy


@dataclass(frozen=True)
class Specs:
    spec: DetectionSpec          # what the detection workers run
    key_spec: DetectionSpec      # the same without NER: identifier-shaped keys, machine headers

    @property
    def needs_ner(self) -> bool:
        return self.key_spec != self.spec


@dataclass
class Compiled:
    """One policy version, ready for the stages."""

    policy: weakref.ref          # not a strong reference: the cache entry must not keep the policy alive
    shape: Shape                 # what the format readers need
    reversible_types: frozenset[str]
    _specs: dict[tuple, Specs] = field(default_factory=dict, repr=False)

    def specs(self, data_dir: Path | str | None = None, fingerprints=None) -> Specs:
        """The detection specs for this data dir and fingerprint index (one pair per gateway in practice)."""
        key = (str(data_dir or ""), getattr(fingerprints, "dsn", None), getattr(fingerprints, "db_schema", None))
        found = self._specs.get(key)
        if found is None:
            spec = self.policy().detection_spec(data_dir, fingerprints)
            found = self._specs[key] = Specs(spec, replace(spec, entities=spec.entities - NER_ENTITIES - NER_ALSO))
        return found


_cache: dict[int, tuple[weakref.ref, Compiled]] = {}


def compiled(policy: Policy) -> Compiled:
    """The policy's `Compiled`, built on first use."""
    found = _cache.get(id(policy))
    if found is not None and found[0]() is policy:  # an id is reused only once its policy is gone
        return found[1]
    key = id(policy)
    ref = weakref.ref(policy, lambda _ref: _cache.pop(key, None))
    built = Compiled(ref, Shape(policy.rule_set, policy.nested_json, policy.bad_lines, policy.unknown_content),
                     policy.reversible_types)
    _cache[key] = (ref, built)
    return built
