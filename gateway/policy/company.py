"""The company-IP parts of a policy: vocabulary, markings, source code,
protected documents and exposure budgets.

They live here so `gateway/policy/model.py` only gains a few fields. Term entity
types are defined by the policy itself (`terms: {CODE_NAME: [...]}`), so the
set of types a policy may name depends on the policy.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.actions import ACTIONS

TERM_TYPE = re.compile(r"^[A-Z][A-Z0-9_]{0,39}$")
WINDOW = re.compile(r"^(\d{1,6})([smhd])$")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def check_term_type(name: str) -> str:
    if not TERM_TYPE.match(name):
        raise ValueError(f"term entity type {name!r} must be upper case letters, digits and _ (e.g. CODE_NAME)")
    return name


def read_terms_file(path: Path) -> list[str]:
    """One term per line; blank lines and lines starting with # are skipped."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read terms file {path}: {type(exc).__name__}") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


class SourceCodeRules(BaseModel):
    """When a field counts as SOURCE_CODE (see gateway/detection/source_code.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_chars: int = Field(40, ge=1)
    min_lines: int = Field(2, ge=1)
    min_density: float = Field(0.6, gt=0.0, le=1.0)


class ProtectedDocuments(BaseModel):
    """When a match against the fingerprint index becomes a PROTECTED_DOCUMENT finding.

    Every condition set must hold: passages shorter than `min_chars`
    normalised characters are ignored (default: the index's k), and a document
    counts only when the text carries at least `min_doc_fraction` of it and it
    makes up at least `min_text_fraction` of the text.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_chars: int | None = Field(None, ge=1)
    min_doc_fraction: float = Field(0.0, ge=0.0, le=1.0)
    min_text_fraction: float = Field(0.0, ge=0.0, le=1.0)
    labels: list[str] = Field(default_factory=list, description="only these labels; empty means all")


class Budget(BaseModel):
    """At most `max_distinct` distinct values of `entity` in clear per `window`; past it, `over`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    entity: str
    max_distinct: int = Field(gt=0)
    window: str
    over: str = "block"

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        if not WINDOW.match(value) or int(WINDOW.match(value).group(1)) == 0:
            raise ValueError("window must be a number and a unit s, m, h or d, e.g. 1d or 12h")
        return value

    @field_validator("over")
    @classmethod
    def _over(cls, value: str) -> str:
        if value == "allow" or value not in ACTIONS:
            choices = ", ".join(sorted(a for a in ACTIONS if a != "allow"))
            raise ValueError(f"over must be an action other than allow: {choices}")
        return value

    @property
    def window_seconds(self) -> int:
        number, unit = WINDOW.match(self.window).groups()
        return int(number) * UNIT_SECONDS[unit]
