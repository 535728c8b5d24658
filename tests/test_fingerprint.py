"""Protected-document fingerprinting: the winnowing guarantee, no leaks, index upkeep."""

from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np
import pytest
from support import PG_DSN

from gateway.detection.fingerprint import FingerprintDetector, FingerprintIndex, Settings, mode_for, scan_paths
from gateway.detection.fingerprint.normalise import normalise
from gateway.detection.fingerprint.pgstore import PostgresFingerprintStore
from gateway.detection.fingerprint.store import SQLiteFingerprintStore
from gateway.detection.fingerprint.winnow import winnow, winnow_reference
from gateway.keys import LocalKeyProvider

K, T = 32, 64

DOC_WORDS = """
revenue forecast quarterly margin pipeline customer contract renewal pricing discount partner logistics
warehouse shipment invoice procurement vendor supplier budget headcount hiring roadmap milestone launch
release feature platform integration migration database latency throughput capacity outage incident
postmortem escalation compliance audit regulator license patent trademark prototype formulation compound
dosage trial cohort enrollment endpoint efficacy safety adverse signal batch yield purity reactor catalyst
solvent membrane coating polymer alloy turbine blade bearing gearbox torque sensor firmware calibration
antenna bandwidth spectrum protocol handshake encryption certificate rotation tenant cluster replica shard
acquisition merger valuation diligence synergy divestiture restructuring severance bonus equity vesting option
strategy initiative program portfolio segment channel retail wholesale enterprise midmarket territory quota
the of and to in for with on by from at as under over into across between within without toward against
""".split()

OTHER_WORDS = """
meadow river pebble willow sparrow thunder lantern harbor orchard blossom glacier canyon prairie lagoon
falcon badger otter heron maple cedar birch juniper moss fern clover thistle daisy tulip poppy lilac
breeze drizzle frost hail mist fog dusk dawn twilight midnight noon ember cinder flame smoke ash
violin cello flute trumpet drum banjo harp lute choir ballad sonnet lyric chorus verse rhyme
kettle teapot saucer ladle skillet oven pantry cellar attic porch garden fence gate hedge
""".split()

ENGLISH = [
    "Thanks for the quick turnaround yesterday. Could you send me the slides before Friday so I can review "
    "them with Maria? Also, the coffee machine on the third floor is broken again.",
    "The function returned null when the user clicked save twice, so I opened a ticket and attached the logs. "
    "It looks like a race between the two requests; please take a look when you have a minute.",
    "Local officials said the bridge will reopen next spring after repairs to its eastern span. Commuters "
    "have been asked to use the ferry or the northern detour until then.",
    "Hi Sam, happy birthday! We are meeting at the Italian place on Elm Street at seven. Let me know if you "
    "need a ride, I have space for two more people in the car.",
]

PY_CODE = '''\
"""Order pricing rules for the wholesale channel."""

import decimal
from dataclasses import dataclass

TIER_DISCOUNTS = {"bronze": 0.02, "silver": 0.05, "gold": 0.09, "platinum": 0.13}


@dataclass
class Order:
    customer_id: str
    tier: str
    lines: list

    def subtotal(self):
        # sum every line before any discount is applied
        total = decimal.Decimal("0")
        for line in self.lines:
            total += decimal.Decimal(str(line["unit_price"])) * line["quantity"]
        return total


def volume_bonus(quantity):
    """Extra discount for large orders, capped so margins stay positive."""
    if quantity >= 10000:
        return 0.04
    if quantity >= 2500:
        return 0.025
    if quantity >= 500:
        return 0.01
    return 0.0


def price_order(order, region_multiplier=1.0):
    base = order.subtotal()
    quantity = sum(line["quantity"] for line in order.lines)
    rate = TIER_DISCOUNTS.get(order.tier, 0.0) + volume_bonus(quantity)
    rate = min(rate, 0.18)  # never go below the floor agreed with finance
    discounted = base * decimal.Decimal(str(1 - rate))
    return (discounted * decimal.Decimal(str(region_multiplier))).quantize(decimal.Decimal("0.01"))


def explain(order):
    parts = [f"tier={order.tier}", f"lines={len(order.lines)}"]
    for index, line in enumerate(order.lines):
        parts.append(f"{index}:{line['sku']}x{line['quantity']}")
    return ", ".join(parts)
'''

JS_CODE = '''\
// Session refresh client used by the billing dashboard.
const RETRY_DELAYS_MS = [250, 500, 1000, 2000, 4000];

/* Tokens are refreshed a little before they expire so that requests
   in flight never carry a stale token. */
export class SessionClient {
  constructor(baseUrl, storage) {
    this.baseUrl = baseUrl;
    this.storage = storage;
    this.refreshing = null;
  }

  async token() {
    const saved = this.storage.get("session");
    if (saved && saved.expiresAt - Date.now() > 30000) {
      return saved.accessToken;
    }
    if (!this.refreshing) {
      this.refreshing = this.refresh(saved).finally(() => { this.refreshing = null; });
    }
    return (await this.refreshing).accessToken;
  }

  async refresh(saved) {
    for (let attempt = 0; attempt < RETRY_DELAYS_MS.length; attempt++) {
      const response = await fetch(`${this.baseUrl}/session/refresh`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ refreshToken: saved ? saved.refreshToken : null }),
      });
      if (response.ok) {
        const body = await response.json();
        this.storage.set("session", body);
        return body;
      }
      await new Promise((resolve) => setTimeout(resolve, RETRY_DELAYS_MS[attempt]));
    }
    throw new Error("session refresh failed after retries");
  }
}
'''

GO_CODE = '''\
package ledger

import (
	"errors"
	"sort"
	"time"
)

// Entry is one posting against an account, in minor currency units.
type Entry struct {
	Account string
	Amount  int64
	At      time.Time
}

var ErrUnbalanced = errors.New("ledger: entries do not balance")

// Post checks that a batch balances to zero and returns per-account totals.
func Post(entries []Entry) (map[string]int64, error) {
	var sum int64
	totals := make(map[string]int64, len(entries))
	for _, e := range entries {
		sum += e.Amount
		totals[e.Account] += e.Amount
	}
	if sum != 0 {
		return nil, ErrUnbalanced
	}
	return totals, nil
}

// Accounts lists the accounts touched by a batch, oldest posting first.
func Accounts(entries []Entry) []string {
	sorted := append([]Entry(nil), entries...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].At.Before(sorted[j].At) })
	seen := map[string]bool{}
	var out []string
	for _, e := range sorted {
		if !seen[e.Account] {
			seen[e.Account] = true
			out = append(out, e.Account)
		}
	}
	return out
}
'''

SQL_CODE = '''\
-- Monthly churn by plan, used by the retention report.
WITH active AS (
    SELECT account_id, plan, date_trunc('month', started_at) AS month
    FROM subscriptions
    WHERE cancelled_at IS NULL OR cancelled_at > started_at + interval '30 days'
),
cancelled AS (
    SELECT account_id, plan, date_trunc('month', cancelled_at) AS month
    FROM subscriptions
    WHERE cancelled_at IS NOT NULL
)
SELECT a.month, a.plan,
       count(DISTINCT a.account_id) AS active_accounts,
       count(DISTINCT c.account_id) AS cancelled_accounts,
       round(100.0 * count(DISTINCT c.account_id) / nullif(count(DISTINCT a.account_id), 0), 2) AS churn_pct
FROM active a
LEFT JOIN cancelled c ON c.plan = a.plan AND c.month = a.month
GROUP BY a.month, a.plan
ORDER BY a.month, a.plan;
'''

CODE_FILES = {"pricing.py": PY_CODE, "session.js": JS_CODE, "ledger.go": GO_CODE, "churn.sql": SQL_CODE}


def salad(seed: int, n_words: int, words: list[str] = DOC_WORDS) -> str:
    rng = random.Random(seed)
    out = []
    for i in range(n_words):
        word = rng.choice(words)
        out.append(word.capitalize() if i % 12 == 0 else word)
        if i % 12 == 11:
            out[-1] += "."
    return " ".join(out)


@pytest.fixture(params=["sqlite", "postgres"])
def open_index(request, tmp_path):
    """Opens an index on one store (each call is another process's view of it): SQLite in
    tmp_path, or PostgreSQL tables in a fresh schema."""
    opened = []

    def open_store():
        if request.param == "sqlite":
            store = SQLiteFingerprintStore.in_data_dir(tmp_path)
        else:
            _, schema = request.getfixturevalue("pg_schema")
            store = PostgresFingerprintStore(PG_DSN, schema)
        opened.append(store)
        return store

    def open_(settings: Settings | None = None, keys=None, recheck_seconds: float = 0.0) -> FingerprintIndex:
        keys = keys or LocalKeyProvider(tmp_path / "keys.json", env={})
        return FingerprintIndex(open_store(), keys, settings, recheck_seconds)

    open_.backend = request.param
    open_.store = open_store
    yield open_
    for store in opened:
        store.close()


@pytest.fixture
def index(open_index):
    return open_index(Settings(k=K, t=T))


def stored_bytes(open_index, tmp_path) -> bytes:
    """Everything the store holds, as raw bytes: the SQLite files, or every PostgreSQL row."""
    if open_index.backend == "sqlite":
        return b"".join(p.read_bytes() for p in tmp_path.glob("fingerprints.sqlite*"))
    store = open_index.store()
    rows = []
    for table in ("fingerprint_meta", "fingerprint_documents", "fingerprint_hashes"):
        rows += store._db.execute(f"SELECT * FROM {store.schema}.{table}").fetchall()
    return b"\n".join(v if isinstance(v, bytes) else str(v).encode() for row in rows for v in row)


@pytest.fixture
def prose_docs(index):
    docs = {f"doc{i}": salad(100 + i, 1500) for i in range(4)}
    infos = {label: index.add(label, f"{label}.txt", text) for label, text in docs.items()}
    return docs, infos


def prose_normalised_length(text: str) -> int:
    return len(normalise(text, "prose"))


def perturb_prose(rng: random.Random, passage: str) -> str:
    words = passage.split(" ")
    styled = [w.upper() if rng.random() < 0.3 else w.lower() if rng.random() < 0.5 else w for w in words]
    return "".join(w + rng.choice([" ", "  ", "\n", "\t", " , ", " - "]) for w in styled)


def test_every_prose_passage_of_t_chars_is_found(index, prose_docs):
    docs, infos = prose_docs
    detector = FingerprintDetector(index)
    rng = random.Random(7)
    for trial in range(200):
        label = rng.choice(list(docs))
        doc = docs[label]
        start = rng.randrange(len(doc) - 600)
        end = start + 1
        while prose_normalised_length(doc[start:end]) < T:
            end += 1
        passage = perturb_prose(rng, doc[start:end])
        before = salad(5000 + trial, rng.randint(0, 40), OTHER_WORDS) + "\n"
        outbound = before + passage + "\n" + salad(9000 + trial, rng.randint(0, 40), OTHER_WORDS)
        p_start, p_end = len(before), len(before) + len(passage)
        findings = [f for f in detector.detect(outbound) if f.rule == label]
        assert findings, f"trial {trial}: passage from {label} not found"
        assert any(f.start < p_end and f.end > p_start for f in findings)
        matches = [m for m in index.match(outbound) if m.doc_id == infos[label].doc_id]
        assert matches and matches[0].matched_chars_doc >= K


def test_every_code_passage_of_t_chars_is_found_despite_indentation_and_comments(index):
    infos = {name: index.add("source", name, code) for name, code in CODE_FILES.items()}
    assert all(info.mode == "code" for info in infos.values())
    rng = random.Random(11)
    found = 0
    for trial in range(200):
        name = rng.choice(list(CODE_FILES))
        lines = CODE_FILES[name].splitlines()
        first = rng.randrange(len(lines) - 3)
        last = first + 1
        while len(normalise("\n".join(lines[first:last]), "code")) < T and last < len(lines):
            last += 1
        cut = lines[first:last]
        shared = normalise("\n".join(cut), "code").text
        if len(shared) < T or shared not in normalise(CODE_FILES[name], "code").text:
            continue  # cut inside a block comment: no shared passage of t chars, nothing promised
        comment = "#" if name == "pricing.py" else "--" if name == "churn.sql" else "//"
        changed = []
        for line in cut:
            line = re.sub(r"(#|//|-- ).*$", comment + " reviewed by the team", line)
            changed.append(rng.choice(["", "  ", "\t", "        "]) + line.strip())
            if rng.random() < 0.2:
                changed.append(f"{comment} note added while pasting")
        passage = "\n".join(changed)
        outbound = ENGLISH[trial % len(ENGLISH)] + "\n\n" + passage + "\n\n" + ENGLISH[(trial + 1) % len(ENGLISH)]
        matches = [m for m in index.match(outbound) if m.doc_id == infos[name].doc_id]
        assert matches, f"trial {trial}: passage from {name} lines {first}-{last} not found"
        p_start = outbound.index(passage)
        assert any(s < p_start + len(passage) and e > p_start for s, e in matches[0].spans)
        found += 1
    assert found >= 190


def test_renamed_identifiers_are_found_when_identifier_normalisation_is_on(open_index):
    index = open_index(Settings(k=K, t=T, identifiers=True))
    index.add("source", "pricing.py", PY_CODE)
    renamed = PY_CODE.replace("quantity", "qty").replace("discounted", "net").replace("order", "o")
    snippet = renamed[renamed.index("def price_o(") : renamed.index("def explain")]
    assert index.match("can you speed this up?\n" + snippet)


def test_unrelated_text_matches_nothing(index, prose_docs):
    for name, code in CODE_FILES.items():
        index.add("source", name, code)
    corpus = [salad(seed, 400) for seed in range(20)] + [salad(50, 400, OTHER_WORDS)] + ENGLISH
    for text in corpus:
        assert index.match(text) == []
        assert index.match(text.upper()) == []


def test_passages_shorter_than_k_never_match(index, prose_docs):
    docs, _ = prose_docs
    rng = random.Random(3)
    for trial in range(200):
        doc = docs[rng.choice(list(docs))]
        start = rng.randrange(len(doc) - 200)
        end = start + 1
        while prose_normalised_length(doc[start : end + 1]) < K:
            end += 1
        passage = doc[start:end]
        assert prose_normalised_length(passage) == K - 1
        outbound = f"ref 4821 9930 {passage} 7713 0042"
        assert index.match(outbound) == [], f"trial {trial}"


def test_index_holds_no_document_text(tmp_path, open_index, index, prose_docs):
    docs, _ = prose_docs
    for name, code in CODE_FILES.items():
        index.add("source", name, code)
    stored = stored_bytes(open_index, tmp_path)
    assert len(stored) > 8 * sum(d.n_fingerprints for d in index.list())  # the hashes are in what we read
    distinctive = ["diligence", "divestiture", "restructuring", "calibration", "SessionClient", "ErrUnbalanced",
                   "volume_bonus", "cancelled_accounts"]
    for word in distinctive:
        assert word.encode() not in stored and word.casefold().encode() not in stored
    text = docs["doc0"]
    normalised = normalise(text, "prose").text
    for i in range(0, 2000, 97):
        assert normalised[i : i + 12].encode() not in stored


def test_list_and_remove_by_label_or_id(index):
    a = index.add("finance", "a.txt", salad(1, 300))
    b = index.add("finance", "b.txt", salad(2, 300))
    c = index.add("legal", "c.txt", salad(3, 300))
    assert [d.doc_id for d in index.list()] == [a.doc_id, b.doc_id, c.doc_id]
    assert a.n_fingerprints > 0 and a.normalised_length == prose_normalised_length(salad(1, 300))
    assert index.match(salad(1, 300)[:400])
    assert index.remove("finance") == 2
    assert [d.label for d in index.list()] == ["legal"]
    assert index.match(salad(1, 300)[:400]) == []
    assert index.remove(c.doc_id) == 1
    assert index.remove("nothing") == 0
    assert index.list() == []


def test_re_adding_the_same_path_replaces_the_document(index):
    index.add("finance", "a.txt", salad(1, 300))
    index.add("finance", "a.txt", salad(2, 300))
    assert len(index.list()) == 1
    assert index.match(salad(1, 300)[:400]) == []
    assert index.match(salad(2, 300)[:400])


def test_a_second_process_sees_documents_added_and_removed_later(open_index, index):
    reader = open_index()
    assert reader.match(salad(1, 300)) == []
    index.add("finance", "a.txt", salad(1, 300))
    assert [m.label for m in reader.match(salad(1, 300))] == ["finance"]
    index.remove("finance")
    assert reader.match(salad(1, 300)) == []


def test_reopening_with_other_settings_is_refused(open_index, index):
    with pytest.raises(ValueError):
        open_index(Settings(k=20, t=50))


def test_opening_with_another_master_key_is_refused_not_silently_blind(tmp_path, open_index, index):
    other = LocalKeyProvider(tmp_path / "elsewhere" / "keys.json", env={})  # also key id k1, other material
    with pytest.raises(ValueError, match="another master key"):
        open_index(keys=other)
    assert open_index(keys=LocalKeyProvider(tmp_path / "keys.json", env={})).settings == Settings(k=K, t=T)


def test_doc_and_text_fractions_describe_the_overlap(index):
    doc = salad(1, 400)
    info = index.add("finance", "a.txt", doc)
    [whole] = index.match(doc)
    assert whole.doc_fraction > 0.95 and whole.text_fraction > 0.95
    half = doc[: len(doc) // 2]
    [part] = index.match(half + " " + salad(60, 400, OTHER_WORDS))
    assert 0.4 < part.doc_fraction < 0.55
    assert 0.3 < part.text_fraction < 0.7
    assert part.matched_chars_doc <= info.normalised_length


def test_detector_reports_label_and_fractions_and_honours_min_chars(index):
    doc = salad(1, 400)
    index.add("finance", "a.txt", doc)
    [finding] = FingerprintDetector(index).detect("please summarise: " + doc[:300])
    assert (finding.entity_type, finding.recognizer, finding.rule, finding.score) == (
        "PROTECTED_DOCUMENT", "fingerprint", "finance", 1.0)
    assert "doc_fraction=" in finding.explanation and "text_fraction=" in finding.explanation
    assert FingerprintDetector(index, min_chars=10_000).detect("please summarise: " + doc[:300]) == []


def test_spans_map_back_to_original_text_with_unicode_casefolding(index):
    doc = "Die Straße führt über den großen Fluß zur Fabrik, wo die Maßnahmen für das Geschäftsjahr beschlossen wurden."
    index.add("de", "memo.txt", doc)
    outbound = "Vorab: DIE STRASSE FÜHRT ÜBER DEN GROSSEN FLUSS ZUR FABRIK, WO DIE MASSNAHMEN FÜR DAS GESCHÄFTSJAHR"
    [match] = index.match(outbound)
    for start, end in match.spans:
        assert 0 <= start < end <= len(outbound)
        assert outbound[start:end].strip() == outbound[start:end]


def test_add_paths_indexes_text_files_and_skips_binaries_and_large_files(tmp_path, index):
    src = tmp_path / "src"
    (src / "nested").mkdir(parents=True)
    (src / "pricing.py").write_text(PY_CODE)
    (src / "nested" / "notes.md").write_text(salad(4, 200))
    (src / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(100))
    (src / "huge.txt").write_text("x" * 5000)
    (src / ".git").mkdir()
    (src / ".git" / "config").write_text("[core]")
    scan = scan_paths([src], max_bytes=4096)
    assert sorted(p.name for p in scan.files) == ["notes.md", "pricing.py"]
    assert {s.path.name: s.reason.split(" ")[0] for s in scan.skipped} == {"logo.png": "binary", "huge.txt": "larger"}
    infos = index.add_paths("repo", [src], max_bytes=4096)
    assert sorted((Path(i.path).name, i.mode) for i in infos) == [("notes.md", "prose"), ("pricing.py", "code")]


def test_mode_is_chosen_by_extension():
    assert [mode_for(p) for p in ["a.py", "b.GO", "c.sql", "d.txt", "e.md", "README"]] == [
        "code", "code", "code", "prose", "prose", "prose"]


def test_vectorised_winnowing_equals_the_sequential_robust_algorithm():
    rng = random.Random(5)
    for _ in range(300):
        n, w = rng.randint(1, 300), rng.randint(1, 40)
        hashes = [rng.randint(0, rng.choice([2, 5, 1000])) for _ in range(n)]
        assert winnow(np.array(hashes, dtype=np.uint64), w).tolist() == winnow_reference(hashes, w)


def test_robust_winnowing_selects_one_fingerprint_per_window_and_few_on_repeats():
    rng = random.Random(9)
    hashes = [rng.randint(0, 2**32 - 1) for _ in range(2000)]
    chosen = set(winnow_reference(hashes, 20))
    assert all(any(p in chosen for p in range(i, i + 20)) for i in range(len(hashes) - 19))
    assert len(winnow_reference([7] * 1000, 20)) == 1000 // 20


def test_postgres_store_reconnects_after_its_connection_is_killed(pg_schema):
    admin, schema = pg_schema
    store = PostgresFingerprintStore(PG_DSN, schema)
    store.write_settings({"k": "32"})
    admin.execute("SELECT pg_terminate_backend(%s)", (store._db.info.backend_pid,))
    assert store.version() == 0 and store.read_settings() == {"k": "32"}
    store.close()


def test_an_index_with_a_recheck_interval_reuses_its_copy_until_then(open_index, index):
    reader = open_index(recheck_seconds=3600)
    assert reader.match(salad(1, 300)) == []
    index.add("finance", "a.txt", salad(1, 300))
    assert reader.match(salad(1, 300)) == []  # not asked again yet
    reader.recheck_seconds = 0
    assert [m.label for m in reader.match(salad(1, 300))] == ["finance"]
