"""The exposure ledger: the lineage of every detected value — which vendor got it, in which form.

A row per distinct value per form per request, holding a keyed fingerprint of
the value (HMAC-SHA256 under `keys.derive("ledger")`), never the value, and the
form in which it left (`FORMS`: clear, masked, hashed, redacted, tokenized,
encrypted, fpe, synthetic; blocked when the request was refused by policy,
dropped when its task was left out of a batch), with vendor, caller, request
id, audit record id, policy digest and time. The key is the same for every
vendor, so one value sent to two vendors has one fingerprint and `who_saw`
finds both. Values are normalised first (case-folded emails, card and phone
numbers without spaces or dashes) so formatting does not hide a match.

Bound into the verified log: a request's rows hash to `lineage_digest`, which
its audit record carries (`AuditRecord.lineage`), so `verify_ledger` finds a
row deleted, added, re-attributed or changed, and an inclusion proof of the
record proves its rows.

Limit: a fingerprint of a low-entropy value (a 4-digit PIN, a date) can be
brute-forced by anyone who holds the gateway key; without the key it reveals
nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gateway.audit.backend import PostgresBackend, SqliteBackend
from gateway.audit.merkle import canonical_json
from gateway.keys import KeyProvider
from gateway.storage.thread import GroupCommit, StoreThread

KEY_PURPOSE = "ledger"
DB_NAME = "ledger.sqlite"
# The form in which a value left, by the action that made it (`block`: the request was refused;
# `drop_task`: its task was left out of the batch). A `subject forget` adds rows of form `erased`.
FORMS = {"allow": "clear", "redact": "redacted", "mask": "masked", "hash": "hashed", "tokenize": "tokenized",
         "encrypt": "encrypted", "fpe": "fpe", "synthetic": "synthetic", "consistent": "pseudonym",
         "block": "blocked",
         "drop_task": "dropped"}
# Forms whose output is kept as `surrogate`: not sensitive (tokens, ciphertexts, pseudonyms). A masked
# value keeps part of the original, so it is never stored.
WITH_SURROGATE = {"hashed", "tokenized", "encrypted", "fpe", "synthetic", "pseudonym"}
# Rows written before every form was recorded named the action.
_LEGACY_FORMS = {"tokenize": "tokenized", "encrypt": "encrypted", "hash": "hashed", "consistent": "pseudonym"}
_COMPACT_TYPES = {"CREDIT_CARD", "PHONE_NUMBER", "US_SSN", "US_ITIN", "US_BANK_NUMBER", "IBAN_CODE",
                  "US_PASSPORT", "US_DRIVER_LICENSE", "MEDICAL_LICENSE", "CRYPTO"}
_NAME_TYPES = {"EMAIL_ADDRESS", "PERSON", "LOCATION", "NRP", "URL", "IP_ADDRESS"}
_SEPARATORS = re.compile(r"[\s\-.()/]+")
_SPACES = re.compile(r"\s+")

SCHEMA = """
CREATE TABLE IF NOT EXISTS exposure (
    id INTEGER PRIMARY KEY,
    ts TEXT NOT NULL,
    request_id TEXT NOT NULL,
    record_id TEXT NOT NULL,
    caller TEXT NOT NULL,
    vendor TEXT NOT NULL,
    entity_type TEXT NOT NULL,
    key_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    via TEXT NOT NULL,
    surrogate TEXT,
    occurrences INTEGER NOT NULL,
    policy_digest TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS exposure_fingerprint ON exposure (fingerprint);
CREATE INDEX IF NOT EXISTS exposure_vendor_ts ON exposure (vendor, ts);
CREATE INDEX IF NOT EXISTS exposure_ts ON exposure (ts);
"""
# `ADD COLUMN IF NOT EXISTS`: a ledger written before policy digests were recorded gains the column.
POSTGRES_SCHEMA = (SCHEMA.replace("INTEGER PRIMARY KEY", "BIGSERIAL PRIMARY KEY").replace(" INTEGER ", " BIGINT ")
                   + "ALTER TABLE exposure ADD COLUMN IF NOT EXISTS policy_digest TEXT NOT NULL DEFAULT '';\n")
# The column `via` holds the form (its name is older than the forms).
COLUMNS = ("ts", "request_id", "record_id", "caller", "vendor", "entity_type", "key_id", "fingerprint",
           "via", "surrogate", "occurrences", "policy_digest")


def normalise(entity_type: str, value: str) -> str:
    """The form of a value that is fingerprinted: formatting differences removed."""
    text = unicodedata.normalize("NFKC", value).strip()
    if entity_type in _COMPACT_TYPES:
        return _SEPARATORS.sub("", text).upper()
    if entity_type in _NAME_TYPES:
        return _SPACES.sub(" ", text).casefold()
    return text


def fingerprint(key: bytes, entity_type: str, value: str) -> str:
    return hmac.digest(key, normalise(entity_type, value).encode("utf-8"), "sha256").hex()  # one C call


@dataclass(frozen=True)
class Exposure:
    """One value in one request and the form it left in. `value` stays in memory."""

    entity_type: str
    form: str
    value: str = field(repr=False)
    surrogate: str | None = None


@dataclass(frozen=True)
class RequestMeta:
    ts: str
    request_id: str
    record_id: str
    caller: str
    vendor: str
    policy_digest: str = ""


def exposures_from(replacements: Iterable) -> list[Exposure]:
    """The pipeline's replacements (entity_type, action, original, sent) -> ledger exposures."""
    out = []
    for r in replacements:
        form = FORMS.get(r.action)
        if form is None or not r.original.strip():
            continue
        out.append(Exposure(r.entity_type, form, r.original, r.sent if form in WITH_SURROGATE else None))
    return out


@dataclass(frozen=True)
class Lineage:
    """One request's ledger rows, fingerprinted, and their digest for the audit record."""

    meta: RequestMeta
    key_id: str
    rows: tuple[tuple, ...]  # (entity_type, fingerprint, form, surrogate, occurrences), sorted

    @property
    def digest(self) -> str:
        return lineage_digest(self.meta, self.key_id, self.rows) if self.rows else ""


def lineage_digest(meta: RequestMeta, key_id: str, rows: Iterable[tuple]) -> str:
    """SHA-256 over the canonical JSON of a request's rows and what they are attributed to."""
    body = {"request_id": meta.request_id, "record_id": meta.record_id, "caller": meta.caller,
            "vendor": meta.vendor, "ts": meta.ts, "policy_digest": meta.policy_digest, "key_id": key_id,
            "rows": sorted([list(r) for r in rows], key=lambda r: [str(x) for x in r])}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def _form(row: dict) -> dict:
    """A stored row as the API gives it: `via` read as `form`, legacy action names as forms."""
    via = row.pop("via")
    row["form"] = _LEGACY_FORMS.get(via, via)
    return row


MAX_BATCH = 512  # requests' rows per group commit


class ExposureLedger:
    """`ledger.sqlite` (WAL) in the data dir, or the `exposure` table in the audit
    PostgreSQL database so that gateways sharing one audit log share one ledger.
    Writes go through one thread and commit in groups (`GroupCommit`, as the audit
    log does): the rows of every request that arrives while a group is written go
    in together, as one transaction and one batch insert."""

    def __init__(self, db, keys: KeyProvider):
        self.db = db
        self._keys = keys
        self._key_id = keys.current_id()
        self._key = keys.derive(KEY_PURPOSE, "", self._key_id)
        self._writer = StoreThread("ledger")
        self._adds = GroupCommit(self._writer, self.add_many_sync, MAX_BATCH)

    @classmethod
    def in_data_dir(cls, data_dir: Path, keys: KeyProvider, dsn: str | None = None) -> ExposureLedger:
        """PostgreSQL when `dsn` (the config's `audit.dsn`) is set, else SQLite in the data dir."""
        if dsn:
            return cls(PostgresBackend(dsn, POSTGRES_SCHEMA), keys)
        db = SqliteBackend(Path(data_dir) / DB_NAME, SCHEMA)
        if "policy_digest" not in {r[1] for r in db.rows("PRAGMA table_info(exposure)")}:
            db.script("ALTER TABLE exposure ADD COLUMN policy_digest TEXT NOT NULL DEFAULT ''")
        return cls(db, keys)

    def lineage(self, meta: RequestMeta, exposures: list[Exposure]) -> Lineage:
        """Fingerprint a request's exposures: one row per distinct (type, value, form, surrogate)."""
        grouped: dict[tuple, int] = {}
        for e in exposures:
            k = (e.entity_type, fingerprint(self._key, e.entity_type, e.value), e.form, e.surrogate or "")
            grouped[k] = grouped.get(k, 0) + 1
        return Lineage(meta, self._key_id, tuple(sorted((*k, n) for k, n in grouped.items())))

    def add_sync(self, meta: RequestMeta | Lineage, exposures: list[Exposure] | None = None) -> int:
        """Write one request's rows (a `Lineage`, or its meta and exposures); returns rows written."""
        lineage = meta if isinstance(meta, Lineage) else self.lineage(meta, exposures or [])
        return self.add_many_sync([lineage])

    def add_many_sync(self, lineages: Sequence[Lineage]) -> int:
        """Write several requests' rows in one transaction (all or none); returns rows written."""
        rows = [(m.ts, m.request_id, m.record_id, m.caller, m.vendor, etype, lineage.key_id, fp, form,
                 surrogate or None, n, m.policy_digest)
                for lineage in lineages for m in (lineage.meta,)
                for etype, fp, form, surrogate, n in lineage.rows]
        if not rows:
            return 0
        with self.db.locked():
            self.db.run_many(
                f"INSERT INTO exposure ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})", rows)
        return len(rows)

    async def add(self, lineage: Lineage) -> int:
        """Returns once the request's rows are committed, with those of the requests waiting then."""
        if not lineage.rows:
            return 0
        await self._adds.add(lineage)
        return len(lineage.rows)

    def who_saw(self, value: str, entity_type: str | None = None) -> list[dict]:
        """Every ledger row for this value (under any key id), oldest first."""
        types = [entity_type] if entity_type else sorted(_COMPACT_TYPES | _NAME_TYPES | {""})
        wanted: dict[str, str] = {}  # fingerprint -> the normalisation family that produced it
        for key_id in self._keys.key_ids():
            key = self._keys.derive(KEY_PURPOSE, "", key_id)
            for t in types:
                wanted[fingerprint(key, t, value)] = normalise(t, value)
        marks = ", ".join("?" * len(wanted))
        args: list = list(wanted)
        sql = f"SELECT {', '.join(COLUMNS)} FROM exposure WHERE fingerprint IN ({marks})"
        if entity_type:
            sql += " AND entity_type = ?"
            args.append(entity_type)
        rows = [_form(dict(zip(COLUMNS, r))) for r in self.db.rows(sql + " ORDER BY ts, id", tuple(args))]
        # a row matches only if the value, normalised the way its own type is, gives its fingerprint
        return [r for r in rows if wanted[r["fingerprint"]] == normalise(r["entity_type"], value)]

    def rows(self, vendor: str | None = None, since: str | None = None) -> list[dict]:
        sql, args = f"SELECT {', '.join(COLUMNS)} FROM exposure WHERE 1 = 1", []
        if vendor:
            sql += " AND vendor = ?"
            args.append(vendor)
        if since:
            sql += " AND ts >= ?"
            args.append(since)
        return [_form(dict(zip(COLUMNS, r))) for r in self.db.rows(sql + " ORDER BY ts, id", tuple(args))]

    def for_records(self, record_ids: Iterable[str]) -> dict[str, list[dict]]:
        """record id -> its rows (every value of the request, as fingerprints)."""
        ids = sorted(set(record_ids))
        out: dict[str, list[dict]] = {i: [] for i in ids}
        for chunk in (ids[i:i + 500] for i in range(0, len(ids), 500)):
            sql = (f"SELECT {', '.join(COLUMNS)} FROM exposure WHERE record_id IN ({', '.join('?' * len(chunk))})"
                   " ORDER BY id")
            for r in self.db.rows(sql, tuple(chunk)):
                row = _form(dict(zip(COLUMNS, r)))
                out[row["record_id"]].append(row)
        return out

    def prune_sync(self, before: str) -> int:
        """Retention: delete rows older than `before` (an ISO UTC time); returns rows deleted."""
        with self.db.locked():
            return self.db.run("DELETE FROM exposure WHERE ts < ?", (before,))

    async def prune(self, before: str) -> int:
        return await self._writer.run(self.prune_sync, before)

    async def close(self) -> None:
        await self._writer.close()
        self.db.close()


@dataclass(frozen=True)
class LedgerCheck:
    ok: bool
    checked: int            # records whose rows were checked against their lineage digest
    problem: str = ""
    rows: int = 0


def verify_ledger(records: Iterable[dict], ledger: ExposureLedger) -> LedgerCheck:
    """Every record's rows hash to its `lineage`; every row belongs to a record that says so.
    Run after `verify_log` passed, on the same records. Rows written before records carried a
    lineage digest (older gateways) are not bound and not checked."""
    records = list(records)
    by_id = {r["id"]: r for r in records}
    rows: dict[str, list[dict]] = {}
    for row in ledger.rows():
        rows.setdefault(row["record_id"], []).append(row)
    oldest = min((r["ts"] for r in records), default="")
    bound_since = min((r["ts"] for r in records if r.get("lineage")), default="~")  # rows before: unbound
    checked = 0
    for r in records:
        got = rows.get(r["id"], [])
        if not r.get("lineage"):
            continue
        checked += 1
        if not got:
            return LedgerCheck(False, checked - 1, f"ledger rows of record seq {r.get('seq')} (request "
                                                   f"{r['request_id']}) were deleted (or never written: see the "
                                                   "gateway's log)")
        meta = RequestMeta(r["ts"], r["request_id"], r["id"], r["caller"], r["vendor"], r.get("policy_digest", ""))
        if len({g["key_id"] for g in got}) != 1 or lineage_digest(meta, got[0]["key_id"], (
                (g["entity_type"], g["fingerprint"], g["form"], g["surrogate"] or "", g["occurrences"])
                for g in got)) != r["lineage"] or any(
                (g["ts"], g["request_id"], g["caller"], g["vendor"], g["policy_digest"])
                != (r["ts"], r["request_id"], r["caller"], r["vendor"], r.get("policy_digest", "")) for g in got):
            return LedgerCheck(False, checked - 1, f"ledger rows of record seq {r.get('seq')} (request "
                                                   f"{r['request_id']}) were added, removed, re-attributed or altered")
    for record_id, got in rows.items():
        if record_id in by_id:
            if not by_id[record_id].get("lineage") and any(g["ts"] >= bound_since for g in got):
                return LedgerCheck(False, checked, f"ledger rows claim record {record_id}, which has no lineage: "
                                                   "added or re-attributed")
            continue
        if any(g["ts"] >= oldest for g in got):  # older rows belong to records pruned by retention
            return LedgerCheck(False, checked, f"{len(got)} ledger row(s) name record {record_id}, which is not "
                                               "in the audit log: added or re-attributed")
    return LedgerCheck(True, checked, rows=sum(len(g) for g in rows.values()))


# Forms in which the vendor got nothing of the value (`erased`: a `subject forget` shredded its tokens).
NOT_RECEIVED = frozenset({"blocked", "dropped", "erased"})


def by_vendor(rows: Iterable[dict]) -> dict[str, dict]:
    """Ledger rows (of one value or one person) per vendor: requests, times, forms, callers,
    policies, first and last seen. `received` is false when every row is blocked or dropped."""
    out: dict[str, dict] = {}
    for r in rows:
        v = out.setdefault(r["vendor"], {"requests": set(), "times": 0, "forms": {}, "types": set(),
                                         "callers": set(), "policy_digests": set(), "first_seen": r["ts"],
                                         "last_seen": r["ts"], "received": False})
        v["requests"].add(r["request_id"])
        v["times"] += r["occurrences"]
        v["forms"][r["form"]] = v["forms"].get(r["form"], 0) + r["occurrences"]
        v["types"].add(r["entity_type"])
        v["callers"].add(r["caller"])
        if r.get("policy_digest"):
            v["policy_digests"].add(r["policy_digest"])
        v["first_seen"], v["last_seen"] = min(v["first_seen"], r["ts"]), max(v["last_seen"], r["ts"])
        v["received"] = v["received"] or r["form"] not in NOT_RECEIVED
    return {name: {**v, "requests": len(v["requests"]), "types": sorted(v["types"]), "callers": sorted(v["callers"]),
                   "policy_digests": sorted(v["policy_digests"]), "forms": dict(sorted(v["forms"].items()))}
            for name, v in sorted(out.items())}
