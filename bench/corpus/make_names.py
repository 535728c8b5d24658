"""Multi-locale names corpus: texts naming people from 19 locales, labelled exactly.

Names come from Faker's locale providers (the detectors' lexicon comes from
names-dataset, so the two are independent); the templates are ours: support
tickets, CRM notes, chat transcripts, e-mail signatures, HR notes, with the
name forms that leaked in issue 11: first name alone ("Thanks Priya"),
"Surname, Given", lower case, ALL CAPS, native scripts ("张伟"), names next
to an address derived from them (p.raman@, priya.raman@, praman@). Capitalised
non-name words (products, order numbers) are left unlabelled so that
over-redaction is measured too; cities and weekdays are labelled LOCATION and
DATE_TIME (types `scan` protects), and the names target is the PERSON row.

Run: python bench/corpus/make_names.py [--n 1000] [--seed 11]  (writes names.jsonl beside it)
Import: `generate(n, seed)` gives [{"text", "spans", "locale"}] (the gateway test uses it).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import unicodedata
from pathlib import Path

LOCALES = ("en_US", "en_GB", "en_IN", "de_DE", "fr_FR", "es_MX", "it_IT", "pt_BR", "pl_PL", "ru_RU",
           "tr_TR", "ar_AA", "fa_IR", "zh_CN", "ja_JP", "ko_KR", "vi_VN", "yo_NG", "id_ID")
# Locales whose Faker names are in a non-Latin script; zh_CN and ja_JP also have romanized names.
NATIVE_SCRIPT = {"ru_RU", "ar_AA", "fa_IR", "zh_CN", "ja_JP", "ko_KR"}
ROMANIZED = {"zh_CN", "ja_JP"}
# Family name first when written natively.
FAMILY_FIRST = {"zh_CN", "ja_JP", "ko_KR"}

DOMAINS = ("example.net", "example.com", "mail.example.org", "customers.example.io")
PRODUCTS = ("Acme Router X2", "the Pro plan", "Nimbus Backup", "Orbit Desk", "Helix API", "the Starter tier")
CITIES = ("Lisbon", "Toronto", "Nairobi", "Osaka", "Denver", "Hamburg", "Lyon", "Pune")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")

# Slots: {full} {first} {last} {rev} ("Last, First") {lower} {upper} {email} {product} {city} {day} {n}
# Each slot that names a person is labelled PERSON; {email} is labelled EMAIL_ADDRESS.
TEMPLATES = (
    "Customer {full} wrote from {email} about {product}: the invoice for order {n} is wrong.",
    "Hi {first},\n\nThanks for reaching out about {product}. Your refund was approved on {day}.\n\nBest,\nSupport",
    "Thanks {first}! I've escalated ticket {n} to the {city} team.",
    "Hi {first}, could you confirm the shipping address for order {n}?",
    "{rev}\nAccount manager, {city} office\nRenewal due {day}.",
    "[{first}] hi, my {product} keeps rebooting\n[Agent] Sorry to hear that! What's the serial?\n[{first}] it's on the box, one sec",
    "Called {full} on {day} re: ticket {n}. Left a voicemail, will try again.",
    "Dr. {last} reviewed the claim and asked for the discharge summary by {day}.",
    "Ms. {last} says the {product} arrived damaged; photos attached to ticket {n}.",
    "Mr. {last} asked us to cancel {product} at the end of the month.",
    "From: {full} <{email}>\nSubject: {product} not syncing\n\nIt stopped working after the update on {day}.",
    "please forward this to {lower}, she handles the {city} accounts",
    "ATTN: {upper} - RETURN AUTHORISATION FOR ORDER {n}",
    "Regards,\n{full}\n{city}",
    "Meeting notes ({day}): {full} from {city} will own the {product} migration; {first} to send the plan.",
    "{first} {last} joined the {city} team as a data analyst on {day}.",
    "Reminder: {full}'s badge expires on {day}. Contact {email} for renewal.",
    "Escalation: the customer ({full}) has been waiting since {day} for {product} credentials.",
    "{email} wants to know why the {product} invoice doubled. Reply to {first} today.",
    "HR note: {full} requested parental leave from {day}; manager approved.",
    "Spoke with {first} about order {n} - she is moving to {city} and needs a new delivery address.",
    "Lead: {full}, procurement, interested in {product}. Follow up {day}.",
    "Name: {full}\nEmail: {email}\nIssue: cannot log in to {product}",
    "@{first} can you take ticket {n}? The customer is in {city}.",
    "Per {full}, the {city} warehouse ships on {day}.",
    "The {product} demo for {rev} is booked for {day} at 10:00.",
    "Signed for by {full} at the {city} depot.",
    "Passenger {upper} missed the connection in {city}; rebook on {day}.",
    "Dear {full},\nYour {product} subscription renews on {day}.",
    "Chat transcript\n{full}: hello, my order {n} never arrived\nAgent: I'm sorry, {first}. Let me check with {city}.",
)

SLOT = re.compile(r"\{(\w+)\}")


def ascii_fold(value: str) -> str:
    """Latin letters without accents, as mail local parts are usually written (ł, ß, ı handled too)."""
    value = value.replace("ł", "l").replace("Ł", "L").replace("ß", "ss").replace("ı", "i").replace("İ", "I")
    folded = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Za-z]", "", folded)


def email_for(first: str, last: str, rng: random.Random) -> str | None:
    """A local part built from the name the way real addresses are (None for a name without Latin letters)."""
    f, lst = ascii_fold(first).lower(), ascii_fold(last.split()[-1]).lower()
    if not f or not lst:
        return None
    local = rng.choice((f"{f}.{lst}", f"{f[0]}.{lst}", f"{f[0]}{lst}", f"{f}{lst[0]}", f"{f}_{lst}",
                        f"{lst}.{f}", f"{f}.{lst}{rng.randint(1, 99)}", f"{f}"))
    return f"{local}@{rng.choice(DOMAINS)}"


def person(fakers: dict, locale: str, rng: random.Random) -> tuple[str, str, str]:
    """(first, last, full) in the form a text from that locale would carry it."""
    fk = fakers[locale]
    if locale in ROMANIZED and rng.random() < 0.5:
        first, last = fk.first_romanized_name(), fk.last_romanized_name()
        return first, last, f"{first} {last}"
    if rng.random() < 0.5 and hasattr(fk, "first_name_female"):
        first, last = fk.first_name_female(), getattr(fk, "last_name_female", fk.last_name)()
    else:
        first, last = getattr(fk, "first_name_male", fk.first_name)(), getattr(fk, "last_name_male", fk.last_name)()
    if locale in FAMILY_FIRST:
        return first, last, f"{last}{first}" if locale in ("zh_CN", "ja_JP") else f"{last} {first}"
    return first, last, f"{first} {last}"


def generate(n: int = 1000, seed: int = 11) -> list[dict]:
    from faker import Faker

    rng = random.Random(seed)
    fakers = {}
    for i, locale in enumerate(LOCALES):
        fakers[locale] = Faker(locale)
        fakers[locale].seed_instance(seed * 100 + i)
    items = []
    while len(items) < n:
        locale = LOCALES[len(items) % len(LOCALES)]
        template = rng.choice(TEMPLATES)
        first, last, full = person(fakers, locale, rng)
        email = email_for(first, last, rng)
        if email is None and "{email}" in template:
            continue
        latin = ascii_fold(full) != ""
        if not latin and ("{lower}" in template or "{upper}" in template):
            continue  # scripts without case
        values = {
            "full": (full, "PERSON"), "first": (first, "PERSON"), "last": (last, "PERSON"),
            "lower": (full.lower(), "PERSON"), "upper": (full.upper(), "PERSON"),
            "email": (email, "EMAIL_ADDRESS"),
            "product": (rng.choice(PRODUCTS), None), "city": (rng.choice(CITIES), "LOCATION"),
            "day": (rng.choice(DAYS), "DATE_TIME"), "n": (str(rng.randint(10000, 99999)), None),
        }
        text, spans, pos = "", [], 0
        for m in SLOT.finditer(template):
            text += template[pos:m.start()]
            slot = m.group(1)
            if slot == "rev":
                text_last = last
                spans.append({"entity_type": "PERSON", "start": len(text), "end": len(text) + len(text_last)})
                text += text_last + ", "
                spans.append({"entity_type": "PERSON", "start": len(text), "end": len(text) + len(first)})
                text += first
            else:
                value, kind = values[slot]
                if kind is not None:
                    spans.append({"entity_type": kind, "start": len(text), "end": len(text) + len(value)})
                text += value
            pos = m.end()
        text += template[pos:]
        items.append({"text": text, "spans": spans, "locale": locale})
    return items


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    out = Path(__file__).with_name("names.jsonl")
    with out.open("w", encoding="utf-8") as f:
        for item in generate(args.n, args.seed):
            f.write(json.dumps(item, ensure_ascii=False) + "\n")
    print(f"{out}: {args.n} texts")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
