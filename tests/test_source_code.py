"""Source code in a text field is flagged; prose, even prose about code, is not."""

import pytest

from gateway.detection.source_code import ENTITY_TYPE, SourceCodeDetector

SNIPPETS = {
    "python": "import os\n\ndef load(path):\n    with open(path) as fh:\n        return [l.strip() for l in fh if l]\n",
    "javascript": "const total = items.reduce((sum, x) => sum + x.price, 0);\nif (total > limit) {\n  alert('too much');\n}\n",
    "java": "public class Greeter {\n    public static void main(String[] args) {\n        System.out.println(\"hi\");\n    }\n}\n",
    "go": "func Sum(xs []int) int {\n\ttotal := 0\n\tfor _, x := range xs {\n\t\ttotal += x\n\t}\n\treturn total\n}\n",
    "sql": "SELECT customer_id, COUNT(*) AS orders\nFROM orders\nWHERE created_at > '2024-01-01'\nGROUP BY customer_id;\n",
    "shell": "#!/bin/sh\nset -e\nfor f in *.csv; do\n  gzip \"$f\"\ndone\n",
    "sql one-liner": "UPDATE accounts SET balance = balance - 100 WHERE id = 42 AND balance >= 100;",
}

PROSE = [
    "Hi Maria, thanks for the update. The function returned null when the user had no address, "
    "so I added a check and reran the tests. Can we ship this on Thursday?",
    "Steps to reproduce:\n1. Open the settings page\n2. Click save twice\nExpected: one request. Actual: two requests.",
    "The council met on Monday (for three hours) and approved the budget; the mayor said the vote was overdue.",
    "Price: $20 (incl. tax)\nDelivery: 3-5 days\nQuestions? Reply to this email.",
    "Best regards,\nTom Baker\nHead of Sales | ACME Corp\n+44 20 7946 0000",
    "lol yes\nok will do, ping me when you're back\nwho has the link to the roadmap doc?",
    "Action items:\n- Anna to update the pricing slide\n- Ben to email the vendor (by Friday)",
]


@pytest.mark.parametrize("language", SNIPPETS)
def test_snippets_in_common_languages_are_flagged(language):
    code = SNIPPETS[language]
    findings = SourceCodeDetector().detect(code)
    assert findings and all(f.entity_type == ENTITY_TYPE for f in findings)
    assert sum(f.end - f.start for f in findings) >= 0.8 * len(code.strip())


@pytest.mark.parametrize("text", PROSE)
def test_ordinary_prose_is_not_flagged(text):
    assert SourceCodeDetector().detect(text) == []


def test_inline_code_mention_in_a_sentence_is_not_flagged():
    text = "If you set `retry=True` and call `client.send(msg)` the request goes out twice, which is the bug."
    assert SourceCodeDetector().detect(text) == []


def test_finding_covers_the_code_region_not_the_surrounding_prose():
    intro = "Hi team, could someone review this before I merge it? It is the fix for the billing bug.\n\n"
    outro = "\n\nThanks a lot, and sorry for the late request."
    text = intro + SNIPPETS["go"] + outro
    [finding] = SourceCodeDetector().detect(text)
    assert finding.start == len(intro)
    assert finding.end == len(intro) + len(SNIPPETS["go"].rstrip())
    assert finding.recognizer == "source_code" and "code_lines=" in finding.explanation


def test_short_code_below_min_chars_is_not_flagged():
    assert SourceCodeDetector(min_chars=40).detect("x = 1;\ny = 2;") == []
    assert SourceCodeDetector(min_chars=5).detect("x = 1;\ny = 2;")


def test_score_grows_with_the_amount_of_code():
    small = SourceCodeDetector().detect(SNIPPETS["python"])[0].score
    large = SourceCodeDetector().detect(SNIPPETS["python"] * 4)[0].score
    assert 0.5 <= small < large <= 0.99
