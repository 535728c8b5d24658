"""Canaries: proof that protection was live, not just configured.

For each route, one synthetic value of every type the gateway detects (names
from many cultures, emails derived from them, cards that pass Luhn, SSNs,
IBANs with valid check digits, cloud and vendor keys in their real formats)
goes through the route's real stages — read, walk, detect, decide, transform
(`gateway.pipeline.rehearse`) — and the body the vendor *would* receive is
searched for it. Nothing is sent or stored in the vault. Each route gets one
signed audit record (`decision: canary`) saying which types were sent, which
were protected, which the policy sends in clear on purpose (`allow`), and any
that leaked. Values are fresh per run and never written anywhere.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import string
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from gateway.actions.fpe import luhn_check_digit
from gateway.audit import AuditLog, AuditRecord
from gateway.config import Settings
from gateway.pipeline.flow import Outbound
from gateway.pipeline.protect import Services
from gateway.pipeline.rehearse import rehearse

log = logging.getLogger("vendorgate.canary")

# Given name, family name: people the gateway must protect, from many cultures.
NAMES = [("Priya", "Raman"), ("Oluwaseun", "Adeyemi"), ("Nguyen", "Thi Lan"), ("Mehmet", "Yilmaz"),
         ("Agnieszka", "Kowalczyk"), ("Siobhan", "O'Sullivan"), ("Thandiwe", "Dlamini"), ("Haruto", "Tanaka"),
         ("Wei", "Zhang"), ("Guadalupe", "Hernandez"), ("Maria", "Gonzalez"), ("John", "Smith")]
# Where each value sits: the everyday wording callers use, so a canary probes what real traffic carries.
SENTENCES = {"PERSON": "Customer {value} wrote in: the parcel never arrived.",
             "EMAIL_ADDRESS": "Please reply to {value} with the tracking link.",
             "PHONE_NUMBER": "Call me on {value} about the refund.",
             "CREDIT_CARD": "My card {value} was charged twice.",
             "US_SSN": "My SSN is {value}, for the tax form.",
             "IBAN_CODE": "Refund to IBAN {value} please.",
             "IP_ADDRESS": "The login came from {value} last night.",
             "SECRET": "Deploy with the key {value} from the vault."}


def _digits(n: int) -> str:
    return "".join(secrets.choice(string.digits) for _ in range(n))


def _luhn_complete(prefix: str, length: int) -> str:
    body = prefix + _digits(length - len(prefix) - 1)
    return body + luhn_check_digit(body)


def _iban_de() -> str:
    bban = _digits(18)
    check = 98 - int(bban + "131400") % 97  # D=13, E=14, then "00"
    return f"DE{check:02d}{bban}"


def _ssn() -> str:
    area = secrets.choice([n for n in range(1, 900) if n != 666])
    return f"{area:03d}-{secrets.randbelow(99) + 1:02d}-{secrets.randbelow(9999) + 1:04d}"


def _token(alphabet: str, n: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def canary_values() -> dict[str, str]:
    """entity type -> a fresh synthetic value of that type."""
    given, family = secrets.choice(NAMES)
    upper_b32 = string.ascii_uppercase + "234567"
    alnum = string.ascii_letters + string.digits
    return {
        "PERSON": f"{given} {family}",
        "EMAIL_ADDRESS": f"{given[0].lower()}.{family.lower().replace(' ', '').replace(chr(39), '')}@example.net",
        "PHONE_NUMBER": f"+1 415-555-{_digits(4)}",
        "CREDIT_CARD": _luhn_complete("4", 16),
        "US_SSN": _ssn(),
        "IBAN_CODE": _iban_de(),
        "IP_ADDRESS": f"203.0.113.{secrets.randbelow(254) + 1}",
        "SECRET": "AKIA" + _token(upper_b32, 16),
        "SECRET:github": "ghp_" + _token(alnum, 36),
    }


@dataclass(frozen=True)
class RouteResult:
    vendor: str
    sent: list[str] = field(default_factory=list)
    protected: list[str] = field(default_factory=list)
    allowed: list[str] = field(default_factory=list)   # the policy sends them in clear on purpose
    leaked: list[str] = field(default_factory=list)
    findings: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.leaked


async def probe_route(settings: Settings, vendor: str, services: Services) -> RouteResult:
    """One rehearsal per type, so a type the policy blocks cannot hide another that leaks."""
    policy = settings.policies[vendor]
    result = RouteResult(vendor)
    for label, value in canary_values().items():
        entity = label.split(":")[0]
        text = SENTENCES[entity].format(value=value)
        body = json.dumps({"messages": [{"role": "user", "content": text}]}).encode()
        got = await rehearse(Outbound(vendor, "v1/canary", "", body, "application/json"), policy, services,
                             settings.config.vendors[vendor].max_body_bytes)
        for t, n in got.findings.items():
            result.findings[t] = result.findings.get(t, 0) + n
        result.sent.append(label)
        if got.outcome == "forwarded" and value.encode() in got.body:
            intended = policy.action_for(entity).action == "allow" and entity in policy.entities
            (result.allowed if intended else result.leaked).append(label)
        else:
            result.protected.append(label)
    return result


def canary_record(result: RouteResult, policy_digest: str, started: float) -> AuditRecord:
    return AuditRecord(
        id=uuid.uuid4().hex, ts=datetime.now(UTC).isoformat(timespec="milliseconds"),
        request_id=uuid.uuid4().hex, caller="vendorgate-canary", vendor=result.vendor, method="CANARY",
        path="/-/canary", decision="canary", status=200 if result.ok else 500, findings=result.findings,
        error="" if result.ok else f"canary leaked: {', '.join(result.leaked)}", policy_digest=policy_digest,
        duration_ms=round((time.perf_counter() - started) * 1000, 2),
        canary={"sent": result.sent, "protected": result.protected, "allowed": result.allowed,
                "leaked": result.leaked},
    )


async def run_canaries(settings: Settings, services: Services, audit: AuditLog | None,
                       vendors: list[str] | None = None) -> list[RouteResult]:
    results = []
    for vendor in vendors or sorted(settings.config.vendors):
        started = time.perf_counter()
        result = await probe_route(settings, vendor, services)
        results.append(result)
        if audit is not None:
            await audit.append(canary_record(result, settings.policies[vendor].digest, started))
        if not result.ok:
            log.error("canary for vendor %s leaked: %s", vendor, ", ".join(result.leaked))
    return results


@dataclass
class CanaryState:
    """The latest result per route, for `/readyz` and the metrics. A route that leaked stays
    red until a later run of that route comes back clean."""

    last: dict[str, RouteResult] = field(default_factory=dict)
    runs: int = 0
    failed: str = ""  # the last run's failure (an exception type), until a run succeeds

    def record(self, result: RouteResult) -> None:
        self.last[result.vendor] = result

    @property
    def leaking(self) -> list[str]:
        return sorted(v for v, r in self.last.items() if not r.ok)

    def readiness(self) -> str:
        """`ok…` or why not; read by the readiness check of both listeners."""
        if self.leaking:
            return "leaking: " + "; ".join(f"{v} ({', '.join(self.last[v].leaked)})" for v in self.leaking)
        if self.failed:
            return f"down (the last canary run failed: {self.failed})"
        return "ok" if self.runs else "ok (first run pending)"


async def canary_schedule(settings: Callable[[], Settings], services: Services, audit: AuditLog,
                          state: CanaryState, on_result: Callable[[RouteResult], None] = lambda _: None) -> None:
    """Runs until cancelled (the app's lifecycle): the first run at start-up, then every
    `canary.interval_seconds`. `settings` is read per run, so a SIGHUP reload's policies are
    what the next run probes. A failed run is logged, shown by readiness and retried."""
    while True:
        current = settings()
        cfg = current.config.canary
        try:
            for result in await run_canaries(current, services, audit, cfg.vendors or None):
                state.record(result)
                on_result(result)
            state.failed = ""
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            state.failed = type(exc).__name__
            log.error("canary run failed: %s", type(exc).__name__)
        state.runs += 1
        await asyncio.sleep(cfg.interval_seconds)
