"""Company IP through the real gateway, `scan` and the CLI: protected documents,
code names, markings and source code, as the vendor receives them."""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path

import pytest
from support import BLOCK_DOCS, UNRELATED, T, disguise, document, passage, post_job, vendorgate

from gateway.detection.fingerprint import FingerprintIndex
from gateway.detection.fingerprint.normalise import normalise
from gateway.keys import LocalKeyProvider
from gateway.policy import PolicyError, load_policy


def index_in(data_dir: Path) -> FingerprintIndex:
    return FingerprintIndex.in_data_dir(data_dir, LocalKeyProvider.in_data_dir(data_dir))


async def test_passages_of_t_chars_of_protected_documents_never_reach_the_vendor(upstream, write_config, start_gateway):
    gw = await start_gateway(write_config(upstream.url, BLOCK_DOCS))
    docs = [document(seed) for seed in range(3)]
    index = index_in(gw.data_dir)
    for i, doc in enumerate(docs):
        index.add("roadmap", f"plan-{i}.md", doc)
    rng = random.Random(7)
    originals = []
    for trial in range(8):
        originals.append(passage(docs[trial % 3], rng, T))
        leaked = disguise(originals[-1])
        text = f"{UNRELATED[trial % 4]}\n{leaked}\n{UNRELATED[(trial + 1) % 4]}"
        r = await post_job(gw, {"prompt": text})
        assert r.status_code == 403, (trial, r.text)
        assert r.json()["entity_types"] == ["PROTECTED_DOCUMENT"]
        assert leaked not in r.text
    assert upstream.received == []
    audit = (gw.data_dir / "audit.sqlite").read_bytes().decode("latin-1").lower()
    assert not any(o[:30].lower() in audit for o in originals)


async def test_unrelated_text_passes_untouched_when_documents_are_indexed(upstream, write_config, start_gateway):
    gw = await start_gateway(write_config(upstream.url, BLOCK_DOCS))
    index = index_in(gw.data_dir)
    for i in range(3):
        index.add("roadmap", f"plan-{i}.md", document(i))
    for text in UNRELATED:
        r = await post_job(gw, {"prompt": text})
        assert r.status_code == 200, r.text
    assert [rec.json()["prompt"] for rec in upstream.received] == UNRELATED


async def test_document_fraction_threshold_lets_small_quotes_through_and_blocks_large_ones(
    upstream, write_config, start_gateway
):
    policy = BLOCK_DOCS + "protected_documents:\n  min_doc_fraction: 0.05\n"
    gw = await start_gateway(write_config(upstream.url, policy))
    doc = document(11)
    index_in(gw.data_dir).add("roadmap", "plan.md", doc)
    n = len(normalise(doc, "prose"))
    rng = random.Random(3)
    small = passage(doc, rng, int(n * 0.02))
    large = passage(doc, rng, int(n * 0.10))
    assert (await post_job(gw, {"prompt": small})).status_code == 200
    assert (await post_job(gw, {"prompt": large})).status_code == 403
    assert [rec.json()["prompt"] for rec in upstream.received] == [small]


async def test_redacted_passage_is_replaced_and_the_rest_is_forwarded(upstream, write_config, start_gateway):
    policy = "detect: [PROTECTED_DOCUMENT]\nactions:\n  PROTECTED_DOCUMENT: redact\n"
    gw = await start_gateway(write_config(upstream.url, policy))
    doc = document(5)
    index_in(gw.data_dir).add("roadmap", "plan.md", doc)
    leaked = passage(doc, random.Random(1), 200)
    r = await post_job(gw, {"prompt": f"{UNRELATED[0]} {leaked} {UNRELATED[1]}"})
    assert r.status_code == 200
    sent = upstream.received[0].json()["prompt"]
    assert "<PROTECTED_DOCUMENT>" in sent
    assert UNRELATED[0][:40] in sent
    assert leaked[10:-10] not in sent


IP_POLICY = """
detect: [CODE_NAME, CUSTOMER_NAME, CLASSIFICATION_MARKING, SOURCE_CODE]
min_score: 0.5
terms:
  CODE_NAME: [Atlas, "Project Bluebird"]
terms_files:
  CUSTOMER_NAME: customers.txt
markings: ["ACME RESTRICTED"]
actions:
  CODE_NAME: redact
  CUSTOMER_NAME: {action: mask, keep: 0}
  CLASSIFICATION_MARKING: block
  SOURCE_CODE: block
"""

CODE = "def total(orders):\n    s = 0\n    for o in orders:\n        s += o.amount\n    return s\n"


@pytest.fixture
def ip_gateway(upstream, write_config, start_gateway, tmp_path):
    (tmp_path / "customers.txt").write_text("# one per line\nInitech\nGlobex Corporation\n")

    async def start():
        return await start_gateway(write_config(upstream.url, IP_POLICY))

    return start


async def test_code_names_and_customer_names_from_the_policy_are_protected(ip_gateway, upstream):
    gw = await ip_gateway()
    r = await post_job(gw, {"note": "project  bluebird ships to GLOBEX CORPORATION before Atlas; Atlassian is fine"})
    assert r.status_code == 200, r.text
    sent = upstream.received[0].json()["note"]
    assert sent == "<CODE_NAME> ships to ****** *********** before <CODE_NAME>; Atlassian is fine"


@pytest.mark.parametrize(("text", "entity_type"), [
    ("CONFIDENTIAL\nQ3 numbers below", "CLASSIFICATION_MARKING"),  # a built-in marking
    ("Header: ACME RESTRICTED\nplan", "CLASSIFICATION_MARKING"),   # a marking from the policy
    (CODE, "SOURCE_CODE"),
], ids=["built-in-marking", "policy-marking", "source-code"])
async def test_markings_and_source_code_block_the_request_naming_what_was_found(ip_gateway, upstream, text,
                                                                               entity_type):
    gw = await ip_gateway()
    r = await post_job(gw, {"note": text})
    assert r.status_code == 403
    assert r.json()["entity_types"] == [entity_type]
    assert upstream.received == []


async def test_prose_mentioning_code_and_confidentiality_in_passing_is_forwarded(ip_gateway, upstream):
    gw = await ip_gateway()
    text = "Please keep this confidential. The function returned null when the user clicked save twice."
    r = await post_job(gw, {"note": text})
    assert r.status_code == 200
    assert upstream.received[0].json()["note"] == text


def test_policy_terms_define_entity_types_and_typos_are_still_errors(tmp_path):
    ok = tmp_path / "ok.yaml"
    (tmp_path / "names.txt").write_text("Initech\n\n# comment\nGlobex\n")
    ok.write_text("terms:\n  CODE_NAME: [Atlas]\nterms_files:\n  CUSTOMER_NAME: names.txt\n"
                  "actions:\n  CODE_NAME: block\n  CUSTOMER_NAME: redact\n")
    policy = load_policy(ok)
    assert policy.terms == {"CODE_NAME": ["Atlas"], "CUSTOMER_NAME": ["Initech", "Globex"]}
    assert {"CODE_NAME", "CUSTOMER_NAME", "PROTECTED_DOCUMENT"} <= policy.entities
    bad = tmp_path / "bad.yaml"
    bad.write_text("terms:\n  CODE_NAME: [Atlas]\nactions:\n  CODENAME: block\n")
    with pytest.raises(PolicyError) as err:
        load_policy(bad)
    assert "bad.yaml:4: actions.CODENAME: unknown entity type 'CODENAME'" in str(err.value)
    missing = tmp_path / "missing.yaml"
    missing.write_text("terms_files:\n  CUSTOMER_NAME: nowhere.txt\n")
    with pytest.raises(PolicyError, match="cannot read terms file"):
        load_policy(missing)


def test_policy_digest_changes_when_the_terms_file_changes(tmp_path):
    (tmp_path / "names.txt").write_text("Initech\n")
    path = tmp_path / "p.yaml"
    path.write_text("terms_files:\n  CUSTOMER_NAME: names.txt\n")
    before = load_policy(path).digest
    (tmp_path / "names.txt").write_text("Initech\nGlobex\n")
    assert load_policy(path).digest != before


def test_fingerprint_cli_adds_lists_and_removes_and_says_what_it_skipped(tmp_path):
    src = tmp_path / "src"
    (src / ".git").mkdir(parents=True)
    (src / "pricing.py").write_text(CODE * 3)
    (src / "plan.md").write_text(document(1))
    (src / "logo.png").write_bytes(b"\x89PNG\0\0binary")
    (src / "empty.txt").write_text("")
    (src / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    data = tmp_path / "data"
    out = vendorgate("fingerprint", "add", "--label", "backend", "--data-dir", str(data), str(src))
    assert out.returncode == 0, out.stderr
    assert "indexed  " in out.stdout and "pricing.py  (code," in out.stdout and "plan.md  (prose," in out.stdout
    assert "logo.png: binary (NUL bytes)" in out.stdout and "empty.txt: empty" in out.stdout
    assert "HEAD" not in out.stdout
    assert "2 file(s) indexed under label 'backend', 2 skipped" in out.stdout
    listed = vendorgate("fingerprint", "list", "--data-dir", str(data)).stdout
    assert "2 document(s) under 1 label(s)" in listed and "k=32 t=64" in listed
    # the index holds keyed hashes only, never the document text
    db = sqlite3.connect(data / "fingerprints.sqlite")
    dump = "\n".join(db.iterdump())
    assert "amount" not in dump and "revenue" not in dump
    removed = vendorgate("fingerprint", "remove", "backend", "--data-dir", str(data))
    assert "removed 2 document(s)" in removed.stdout
    assert "0 document(s)" in vendorgate("fingerprint", "list", "--data-dir", str(data)).stdout


def test_scan_consults_the_fingerprint_index_of_the_data_dir(tmp_path):
    data = tmp_path / "data"
    doc = tmp_path / "strategy.md"
    doc.write_text(document(21))
    assert vendorgate("fingerprint", "add", "--label", "strategy", "--data-dir", str(data), str(doc)).returncode == 0
    leaked = disguise(passage(doc.read_text(), random.Random(2), T))
    lines = "\n".join(json.dumps({"text": t}) for t in (f"{UNRELATED[0]} {leaked}", UNRELATED[1])) + "\n"
    policy = tmp_path / "p.yaml"
    policy.write_text("detect: [PROTECTED_DOCUMENT]\nactions:\n  PROTECTED_DOCUMENT: block\n")
    out = vendorgate("scan", "--workers", "1", "--explain", "--policy", str(policy), "--data-dir", str(data), stdin=lines)
    assert out.returncode == 0, out.stderr
    hit, clean = [json.loads(line) for line in out.stdout.splitlines()]
    assert hit["blocked"] == ["PROTECTED_DOCUMENT"] and hit["text"] is None
    finding = hit["findings"][0]
    assert finding["rule"] == "strategy" and "doc_fraction=" in finding["explanation"]
    assert clean == {"findings": [], "text": UNRELATED[1]}


def test_shipped_ip_protection_policy_is_valid():
    out = vendorgate("policy", "check", "policies/ip-protection.yaml")
    assert out.returncode == 0, out.stderr
