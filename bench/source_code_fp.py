"""SourceCodeDetector: false-positive rate on prose, recall on code.

Run: .venv/bin/python bench/source_code_fp.py
Prose: 300 fixed-seed paragraphs composed from hand-written sentences in five
styles (email, support ticket, news, chat, meeting notes), a third of them
mentioning code terms in passing ("the function returned null", `config.yaml`).
Code: 100 snippets from templates in 10 languages with varied names and values.
A prose paragraph with any finding is a false positive; a snippet is recalled
when findings cover at least half of its characters.
"""

from __future__ import annotations

import random
import time

from gateway.detection.source_code import SourceCodeDetector

EMAIL = [
    "Hi Priya, thanks for sending the contract over so quickly.",
    "I have reviewed the draft and left a few comments in the margin.",
    "Could we move our call to Thursday afternoon instead?",
    "Please let me know if the revised numbers work for your team.",
    "Attached you will find the invoice for the March delivery.",
    "We are still waiting on the signed copy from legal.",
    "Best regards,\nTom",
    "Looking forward to seeing everyone at the offsite next week.",
]
TICKET = [
    "Steps to reproduce: open the settings page, change the language, and click save twice.",
    "Expected result: the page reloads with the new language.",
    "Actual result: nothing happens and the spinner never stops.",
    "This started after the last release on Tuesday.",
    "Customer reports that the export to CSV is missing the last column.",
    "Priority: high, since it blocks the month-end report.",
    "I could not reproduce this on staging, only in production.",
    "Workaround: refresh the page and try again.",
]
CODE_TALK = [
    "The function returned null when the user had no address on file.",
    "It looks like the `retry` flag is ignored when the timeout is set to zero.",
    "We should bump the API version and call the new endpoint for orders instead.",
    "After the deploy the login method throws an exception for SSO users.",
    "Can you check whether config.yaml has the right database host for staging?",
    "The loop in the import job runs once per row, which explains the slow batch.",
    "Set the variable MAX_WORKERS to four and restart the service (not the whole cluster).",
    "I think the class that parses dates does not handle time zones.",
    "The query returns duplicate rows when a customer has two accounts.",
    "Our Python script reads the file, filters empty lines, and writes the result to S3.",
    "Use git pull, then run make test before you open the pull request.",
    "The null pointer came from the cache layer, not from the parser.",
]
NEWS = [
    "The city council approved the new budget on Monday after a long debate.",
    "Officials expect the bridge repairs to finish before the winter storms arrive.",
    "Shares of the company rose four percent in early trading.",
    "The museum will reopen its east wing to visitors in the spring.",
    "Local farmers say the dry summer has cut their harvest by a third.",
    "The report, published on Friday, calls for more spending on schools.",
    "Residents were asked to conserve water during the heat wave.",
    "The team won its third straight game with a late goal.",
]
CHAT = [
    "lol yes, that meeting could have been an email",
    "ok will do, ping me when you're back",
    "who has the link to the roadmap doc?",
    "brb, grabbing coffee",
    "nice work on the demo today!!",
    "can someone review my PR when you get a sec",
    "sure - 3pm works for me",
    "np, thanks for the heads up",
]
NOTES = [
    "Action items:\n- Anna to update the pricing slide\n- Ben to email the vendor about delivery dates",
    "Agenda: budget review, hiring plan, and office move.",
    "Decision: we will launch in Germany first and France in Q3.",
    "Open question: who owns the onboarding emails?",
    "1. Review last quarter's numbers\n2. Agree on targets\n3. Assign owners",
    "Next meeting: Tuesday 10:00 (room 4B).",
]
STYLES = [EMAIL, TICKET, NEWS, CHAT, NOTES]


def prose_set(n: int = 300) -> list[str]:
    rng = random.Random(1)
    out = []
    for i in range(n):
        pool = STYLES[i % len(STYLES)] + (CODE_TALK if i % 3 == 0 else [])
        sentences = rng.sample(pool, rng.randint(2, min(6, len(pool))))
        joiner = "\n" if pool in (NOTES, CHAT) or rng.random() < 0.3 else " "
        out.append(joiner.join(sentences))
    return out


NAMES = ["order", "invoice", "customer", "report", "session", "payment", "batch", "record", "item", "account"]

TEMPLATES = {
    "python": [
        "def {a}_total({b}s):\n    total = 0\n    for {b} in {b}s:\n        total += {b}.amount * {n}\n    return total\n",
        "class {A}Service:\n    def __init__(self, repo):\n        self.repo = repo\n\n    def find(self, {b}_id):\n        return self.repo.get({b}_id)\n",
        "import json\n\nwith open('{a}.json') as fh:\n    data = json.load(fh)\nprint(len(data['{b}s']))\n",
    ],
    "javascript": [
        "function {a}Total({b}s) {{\n  let total = 0;\n  for (const {b} of {b}s) {{\n    total += {b}.amount * {n};\n  }}\n  return total;\n}}\n",
        "const {a} = await fetch(`/api/{b}s/${{id}}`);\nif (!{a}.ok) {{\n  throw new Error('failed');\n}}\nconsole.log(await {a}.json());\n",
        "export const {a}Slice = createSlice({{\n  name: '{a}',\n  initialState: {{ items: [] }},\n  reducers: {{ add: (state, action) => {{ state.items.push(action.payload); }} }},\n}});\n",
    ],
    "java": [
        "public class {A}Service {{\n    private final {B}Repository repo;\n\n    public {A} find(long id) {{\n        return repo.findById(id).orElseThrow();\n    }}\n}}\n",
        "for (int i = 0; i < {a}s.size(); i++) {{\n    {A} {a} = {a}s.get(i);\n    System.out.println({a}.getName());\n}}\n",
    ],
    "go": [
        "func {A}Total({a}s []{A}) int {{\n\ttotal := 0\n\tfor _, {b} := range {a}s {{\n\t\ttotal += {b}.Amount * {n}\n\t}}\n\treturn total\n}}\n",
        "if err := db.QueryRow(\"SELECT id FROM {a}s WHERE id = $1\", id).Scan(&{b}); err != nil {{\n\treturn nil, fmt.Errorf(\"load {a}: %w\", err)\n}}\n",
    ],
    "sql": [
        "SELECT {a}_id, SUM(amount) AS total\nFROM {a}s\nWHERE created_at > now() - interval '{n} days'\nGROUP BY {a}_id\nORDER BY total DESC;\n",
        "CREATE TABLE {a}s (\n    id BIGSERIAL PRIMARY KEY,\n    {b}_id BIGINT NOT NULL REFERENCES {b}s(id),\n    amount NUMERIC(12, 2) NOT NULL\n);\n",
        "UPDATE {a}s SET status = 'closed' WHERE {b}_id = {n} AND status = 'open';",
    ],
    "shell": [
        "#!/bin/bash\nset -euo pipefail\nfor f in /var/log/{a}/*.log; do\n  gzip \"$f\"\ndone\necho \"compressed {a} logs\"\n",
        "export {A}_HOME=/opt/{a}\nif [ ! -d \"${A}_HOME\" ]; then\n  mkdir -p \"${A}_HOME\"\nfi\ncp -r build/* \"${A}_HOME/\"\n",
    ],
    "c": [
        "#include <stdio.h>\n\nint {a}_sum(const int *{b}s, size_t n) {{\n    int total = 0;\n    for (size_t i = 0; i < n; i++) {{\n        total += {b}s[i];\n    }}\n    return total;\n}}\n",
        "static void {a}_free(struct {a} *p) {{\n    if (p == NULL) return;\n    free(p->{b});\n    free(p);\n}}\n",
    ],
    "rust": [
        "fn {a}_total({b}s: &[{B}]) -> u64 {{\n    {b}s.iter().map(|x| x.amount * {n}).sum()\n}}\n",
        "impl {A} {{\n    pub fn new(id: u64) -> Self {{\n        Self {{ id, {b}s: Vec::new() }}\n    }}\n}}\n",
    ],
    "ruby": [
        "class {A}Job\n  def perform({b}_id)\n    {b} = {B}.find({b}_id)\n    {b}.update!(status: :done)\n  end\nend\n",
        "{a}s.each do |{b}|\n  puts \"#{{{b}.id}}: #{{{b}.total}}\"\nend\n",
    ],
    "php": [
        "<?php\nfunction {a}_total(array ${b}s): int {{\n    $total = 0;\n    foreach (${b}s as ${b}) {{\n        $total += ${b}['amount'];\n    }}\n    return $total;\n}}\n",
        "$stmt = $pdo->prepare('SELECT * FROM {a}s WHERE id = ?');\n$stmt->execute([$id]);\n${a} = $stmt->fetch();\n",
    ],
}


def code_set(n: int = 100) -> list[tuple[str, str]]:
    rng = random.Random(2)
    out = []
    languages = list(TEMPLATES)
    for i in range(n):
        lang = languages[i % len(languages)]
        a, b = rng.sample(NAMES, 2)
        snippet = rng.choice(TEMPLATES[lang]).format(a=a, b=b, A=a.capitalize(), B=b.capitalize(), n=rng.randint(2, 90))
        out.append((lang, snippet))
    return out


def main() -> None:
    detector = SourceCodeDetector()
    prose = prose_set()
    code = code_set()
    t0 = time.perf_counter()
    flagged = [p for p in prose if detector.detect(p)]
    recalled = {}
    for lang, snippet in code:
        covered = sum(f.end - f.start for f in detector.detect(snippet))
        recalled.setdefault(lang, []).append(covered >= 0.5 * len(snippet.strip()))
    elapsed = time.perf_counter() - t0
    n_chars = sum(map(len, prose)) + sum(len(s) for _, s in code)
    hits = sum(sum(v) for v in recalled.values())
    print(f"prose: {len(flagged)}/{len(prose)} paragraphs flagged, FP rate {len(flagged) / len(prose):.1%}")
    print(f"code: {hits}/{len(code)} snippets recalled, recall {hits / len(code):.1%}")
    print("per language: " + ", ".join(f"{k} {sum(v)}/{len(v)}" for k, v in recalled.items()))
    print(f"speed: {n_chars / elapsed / 1e6:.2f} MB/s")
    for p in flagged[:5]:
        print("FP example:", repr(p[:160]))


if __name__ == "__main__":
    main()
