"""Realistic fake values: the vendor sees "Ryan Gallagher" instead of a token.

Faker is seeded from HMAC(per-vendor key, type + value), so the same value
always gets the same fake for one vendor and different fakes across vendors.
The fake is an issued surrogate (stored in the vault); the restorer matches it
exactly (ignoring case) among the surrogates issued for the request. Fake
e-mail addresses use the reserved example.* domains. A fake that collided with
another value's gets reseeded; after three tries, or for types Faker cannot
fake, the value gets a tokenize surrogate instead.

Limit: a fake that also appears in the response for its own reasons (a fake
city that really is mentioned) is restored too; prefer tokenize where that matters.
"""

import hashlib
import hmac
from collections.abc import Callable

from faker import Faker

from gateway.actions.base import Action, ActionContext, Replaced
from gateway.actions.tokenize import Tokenize
from gateway.reversible.tokens import Issued, collision_attempt

MAX_RESEEDS = 3

_faker = Faker("en_US")

FAKERS: dict[str, Callable[[Faker], str]] = {
    "PERSON": lambda f: f.name(),
    "EMAIL_ADDRESS": lambda f: f.safe_email(),
    "PHONE_NUMBER": lambda f: f.numerify("(###) ###-####"),
    "ADDRESS": lambda f: f.address().replace("\n", ", "),
    "STREET_ADDRESS": lambda f: f.street_address(),
    "LOCATION": lambda f: f.city(),
    "CITY": lambda f: f.city(),
}


def fake_value(key: bytes, entity_type: str, value: str, attempt: int = 0) -> Replaced:
    seed = hmac.new(key, f"{entity_type}\0{value}\0{attempt}".encode(), hashlib.sha256).digest()
    _faker.seed_instance(int.from_bytes(seed[:8], "big"))
    return FAKERS[entity_type](_faker)


class Synthetic(Action):
    name = "synthetic"
    reversible = True
    options = frozenset()

    def apply(self, value: str, ctx: ActionContext) -> Replaced:
        attempt = collision_attempt(ctx.collisions, ctx.keys, ctx.vendor, ctx.entity_type, value)
        if ctx.entity_type not in FAKERS or attempt >= MAX_RESEEDS:
            return Tokenize().apply(value, ctx)
        key = ctx.keys.derive("synthetic", ctx.vendor)
        fake = fake_value(key, ctx.entity_type, value, attempt)
        if fake.lower() == value.lower():
            fake = fake_value(key, ctx.entity_type, value, attempt + MAX_RESEEDS)
        return Replaced(fake, (Issued(fake, ctx.entity_type, value),))
