"""`consistent`: realistic pseudonyms that stay the same person everywhere (for labelers).

A labeler has to see a name to label it, and has to see that two mentions are
one person. A PERSON value is replaced part by part: each given name and the
surname are picked from Faker's given-name and surname lists (Latin-script
locales from many regions, about 10,000 given names and 12,000 surnames, sorted
so the pick does not depend on load order) by HMAC-SHA256 under a per-vendor
key (HKDF from the master key, purpose "consistent") of the part's normalised
form (case and accents folded). Therefore, for one vendor:

- the same person has the same pseudonym in every task and batch;
- "Maria Gonzalez's" becomes "Aiko Tanaka's" (the vault row is "Aiko Tanaka");
- "Gonzalez, Maria" becomes "Tanaka, Aiko" and "Maria" alone "Aiko"; a lone
  "Gonzalez" becomes "Tanaka" when a mention in the same task
  (`ActionContext.related`: the task's PERSON mentions) has it as its surname, else it
  is read as a given name; a value another detector also found as PERSON, or whose
  words all belong to such a mention ("Priya" typed NRP by the NER model), is that
  person's mention too;
- honorifics and suffixes stay ("Dr. Maria Gonzalez Jr."); particles go
  ("Ludwig van Beethoven" -> "Aiko Tanaka"); an initial stays an initial.

E-mail addresses built from a name use the same parts
(`maria.gonzalez@acme.com` -> `aiko.tanaka@example.org`, reserved domains);
phone numbers get keyed digits in the same layout (a leading `+country` kept).
Other types get `synthetic`.

Reversible like `synthetic`: each mention as written (its possessive cut off)
is an issued surrogate in the vault, and the restorer matches it among the
request's surrogates. A pseudonym the vault already holds for someone else is
picked again for the newcomer (`collision_attempt`); because the vault keeps
originals exactly, a second spelling of one person ("MARIA GONZALEZ") is such a
newcomer and gets another pseudonym. The lists come from the installed Faker
(pinned in pyproject.toml): a Faker upgrade can change the pick for people
not seen before, never the vault's rows.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import re
import unicodedata
from functools import lru_cache

from gateway.actions.base import Action, ActionContext, Replaced
from gateway.actions.synthetic import Synthetic
from gateway.reversible.tokens import Issued, collision_attempt

LOCALES = ("en_US", "en_GB", "en_IN", "en_NG", "es_ES", "es_MX", "pt_BR", "fr_FR", "it_IT", "de_DE", "nl_NL",
           "pl_PL", "sv_SE", "fi_FI", "da_DK", "no_NO", "cs_CZ", "sk_SK", "hu_HU", "ro_RO", "hr_HR", "sl_SI",
           "tr_TR", "az_AZ", "uz_UZ", "id_ID", "vi_VN", "sw", "yo_NG", "zu_ZA", "tw_GH", "ga_IE", "et_EE",
           "lv_LV", "lt_LT")
HONORIFICS = frozenset({"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "dame", "mme", "mlle", "herr", "frau",
                        "sr", "sra", "srta", "don", "dona", "rev", "fr", "capt", "col", "gen", "lord", "lady"})
SUFFIXES = frozenset({"jr", "sr", "ii", "iii", "iv", "phd", "md"})
PARTICLES = frozenset({"van", "von", "de", "der", "den", "da", "das", "dos", "do", "di", "du", "del", "della", "la",
                       "le", "ter", "ten", "bin", "binti", "bint", "ibn", "al", "el", "ben", "y"})
WORD = re.compile(r"[^\W\d_]+(?:[-'’][^\W\d_]+)*\.?")
POSSESSIVE = re.compile(r"(?:['’][sS]|(?<=[sSzZxX])['’])$")
EMAIL = re.compile(r"(?P<local>[^@\s]+)@(?P<domain>[^@\s]+)")
DOMAINS = ("example.com", "example.org", "example.net")
_NAME = re.compile(r"[^\W\d_]+")


@lru_cache(maxsize=1)
def pools() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(given names, surnames): one word each, sorted, from Faker's person providers."""
    given: set[str] = set()
    surnames: set[str] = set()
    for locale in LOCALES:
        provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
        for attr in ("first_names", "first_names_male", "first_names_female"):
            given.update(getattr(provider, attr, ()) or ())
        surnames.update(getattr(provider, "last_names", ()) or ())
    keep = [tuple(sorted(n for n in names if _NAME.fullmatch(n) and len(n) > 1)) for names in (given, surnames)]
    return keep[0], keep[1]


def fold(word: str) -> str:
    """The form a part is keyed by: case, accents and a trailing dot folded away."""
    decomposed = unicodedata.normalize("NFKD", word.rstrip(".").replace("’", "'").casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _cased(pick: str, like: str) -> str:
    if len(like) > 1 and like.isupper():
        return pick.upper()
    if like.islower():
        return pick.lower()
    return pick


class Parts:
    """A name mention's words, each with its role: given, surname, keep (honorific, suffix) or drop (particle)."""

    def __init__(self, text: str, related: tuple[str, ...] = ()):
        self.words = list(WORD.finditer(text))
        self.roles = self._roles(text, related)

    def _roles(self, text: str, related: tuple[str, ...]) -> list[str]:
        roles = []
        for n, m in enumerate(self.words):
            key = fold(m.group())
            if key in HONORIFICS and n < len(self.words) - 1 and m.group()[0].isupper():
                roles.append("keep")
            elif key in SUFFIXES and n > 0 and m.group()[0].isupper():
                roles.append("keep")
            elif key in PARTICLES and m.group().islower() and n < len(self.words) - 1:
                roles.append("drop")
            else:
                roles.append("name")
        names = [n for n, r in enumerate(roles) if r == "name"]
        comma = text.find(",")
        if comma >= 0 and names and self.words[names[0]].end() <= comma < self.words[names[-1]].start():
            for n in names:  # "Surname, Given"
                roles[n] = "surname" if self.words[n].end() <= comma else "given"
        elif len(names) == 1:
            roles[names[0]] = "surname" if fold(self.words[names[0]].group()) in _known(related)[0] else "given"
        else:
            for n in names:
                roles[n] = "given"
            if names:
                roles[names[-1]] = "surname"
        return roles

    def surnames(self) -> set[str]:
        return {fold(m.group()) for m, r in zip(self.words, self.roles) if r == "surname"}


@lru_cache(maxsize=64)
def _known(related: tuple[str, ...]) -> tuple[frozenset[str], frozenset[str]]:
    """The surnames, and all name words, of a task's person mentions: parsed once per task, not per value."""
    surnames: set[str] = set()
    words: set[str] = set()
    for mention in related:
        parts = Parts(POSSESSIVE.sub("", mention))
        surnames |= parts.surnames()
        words |= {fold(m.group()) for m, r in zip(parts.words, parts.roles) if r in ("given", "surname")}
    return frozenset(surnames), frozenset(words)


def _pick(key: bytes, role: str, word: str, attempt: int) -> str:
    """A pool name for one part; never the part itself. An initial gets an initial."""
    given, surnames = pools()
    pool = surnames if role == "surname" else given
    norm = fold(word)
    n = attempt
    while True:
        digest = hmac.new(key, f"{role}\0{norm}\0{n}".encode(), hashlib.sha256).digest()
        pick = pool[int.from_bytes(digest[:8], "big") % len(pool)]
        if len(norm) == 1:
            pick = pick[0] + ("." if word.endswith(".") else "")
        if fold(pick) != norm:
            return _cased(pick, word.rstrip("."))
        n += 1_000


class Consistent(Action):
    name = "consistent"
    reversible = True
    options = frozenset()

    def check_options(self, options) -> None:
        pools()  # the name lists load with the policy (0.2 s), not on the event loop at the first request

    def apply(self, value: str, ctx: ActionContext) -> Replaced:
        if "PERSON" in (ctx.entity_type, *ctx.also) or self.part_of_someone(value, ctx.related):
            return self.person(value, ctx)
        if ctx.entity_type == "EMAIL_ADDRESS" and EMAIL.fullmatch(value.strip()):
            return self.email(value, ctx)
        if ctx.entity_type == "PHONE_NUMBER" and sum(c.isdigit() for c in value) >= 4:
            return self.phone(value, ctx)
        return Synthetic().apply(value, ctx)

    @staticmethod
    def part_of_someone(value: str, related: tuple[str, ...]) -> bool:
        """A value the detector typed otherwise ("Priya" as NRP) whose words are all name words of a
        person mentioned in the same task is that person's mention."""
        words = {fold(m.group()) for m in WORD.finditer(POSSESSIVE.sub("", value))}
        return bool(words and related) and words <= _known(related)[1]

    def _attempt(self, ctx: ActionContext, value: str, entity_type: str = "PERSON") -> int:
        return collision_attempt(ctx.collisions, ctx.keys, ctx.vendor, entity_type, value)

    def person(self, value: str, ctx: ActionContext) -> Replaced:
        cut = POSSESSIVE.search(value)
        base, tail = (value[:cut.start()], value[cut.start():]) if cut else (value, "")
        parts = Parts(base, ctx.related)
        if not any(r in ("given", "surname") for r in parts.roles):
            return Synthetic().apply(value, ctx)
        key = ctx.keys.derive("consistent", ctx.vendor)
        whole = self._attempt(ctx, base)
        last = max(n for n, r in enumerate(parts.roles) if r in ("given", "surname"))
        out, pos = [], 0
        for n, (m, role) in enumerate(zip(parts.words, parts.roles)):
            out.append(base[pos:m.start()])
            pos = m.end()
            if role == "keep":
                out.append(m.group())
            elif role == "drop":
                pos = len(base) - len(base[pos:].lstrip())  # the particle and the space after it
            else:
                word = m.group()
                attempt = self._attempt(ctx, word.rstrip(".")) + (whole if n == last and len(parts.words) > 1 else 0)
                out.append(_pick(key, role, word, attempt))
        out.append(base[pos:])
        fake = "".join(out)
        return Replaced(fake + tail, (Issued(fake, "PERSON", base),))  # one vault row per person, whatever the type

    def email(self, value: str, ctx: ActionContext) -> Replaced:
        m = EMAIL.fullmatch(value.strip())
        key = ctx.keys.derive("consistent", ctx.vendor)
        attempt = self._attempt(ctx, value, ctx.entity_type)
        words = [w for w in re.split(r"[._+-]", m.group("local")) if w]
        if 1 <= len(words) <= 3 and all(_NAME.fullmatch(w) for w in words):
            roles = ["given"] * (len(words) - 1) + ["surname" if len(words) > 1 else "given"]
            picks = (_pick(key, r, w, self._attempt(ctx, w.capitalize())) for r, w in zip(roles, words))
            local = ".".join(fold(p).encode("ascii", "ignore").decode() or "x" for p in picks)
        else:
            local = "user" + _digits(key, "local\0" + m.group("local").casefold(), 6)
        if attempt:
            local += str(attempt + 1)
        domain = DOMAINS[hmac.new(key, m.group("domain").casefold().encode(), hashlib.sha256).digest()[0] % 3]
        fake = f"{local}@{domain}"
        return Replaced(fake, (Issued(fake, ctx.entity_type, value),))

    def phone(self, value: str, ctx: ActionContext) -> Replaced:
        key = ctx.keys.derive("consistent", ctx.vendor)
        keep = re.match(r"\s*\+\d{1,3}(?=\D)", value)
        head = keep.group() if keep else ""
        body = value[len(head):]
        attempt = self._attempt(ctx, value, ctx.entity_type)
        count = sum(c.isdigit() for c in body)
        number = "".join(c for c in value if c.isdigit())
        while True:
            digits = iter(_digits(key, f"phone\0{number}\0{attempt}", count))
            fake = head + "".join(next(digits) if c.isdigit() else c for c in body)
            if fake != value:
                return Replaced(fake, (Issued(fake, ctx.entity_type, value),))
            attempt += 1


def _digits(key: bytes, seed: str, count: int) -> str:
    """`count` keyed digits; the first is never 0 (a number does not start with its trunk prefix)."""
    out, n = "", 0
    while len(out) < count:
        out += str(int.from_bytes(hmac.new(key, f"{seed}\0{n}".encode(), hashlib.sha256).digest(), "big"))[1:40]
        n += 1
    out = out[:count]
    return (str(int(out[0]) % 9 + 1) + out[1:]) if out else out
