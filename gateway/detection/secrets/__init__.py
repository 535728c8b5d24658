"""Secret (credential) detection.

`SecretDetector().detect(text)` returns `Finding`s with entity_type "SECRET",
recognizer "secrets" and `rule` set to the rule id; the span covers the secret
value only (for `password=hunter2!`, just `hunter2!`). Four layers:

* gitleaks' catalogue (`gitleaks.py`, `data/gitleaks.toml`): maintained rules
  loaded as data, compiled with RE2, prefiltered in one hyperscan pass;
  findings are named `gitleaks:<id>`;
* service rules (`catalog.py`): our regex for formats the catalogue lacks or
  that need a validator;
* keyword rules (`generic.py`): a credential-like name assigned a literal,
  judged by `values.py` (entropy, password shape, placeholders);
* encoded blobs (`encoded.py`): base64 / percent-encoded text decoded once and
  scanned again; a hit is reported over the whole blob as `base64:<rule>`.

Overlapping findings collapse to the most specific rule (our service > our
URL/header > catalogue > our generic > gitleaks' generic, then the longer span).

Adding a rule: first check the catalogue (`bench/secrets_recall.py --ablation`
shows whether one of ours adds anything); a newer gitleaks release of
`data/gitleaks.toml` brings new formats. Otherwise append
`rule(id, description, pattern, keywords, ...)` to the
fitting list in `catalog.py`. Put the secret in a group named `secret` (else
the whole match is the secret); give literal lower-case `keywords` that every
match contains so the regex is skipped on texts without them; add
`entropy=` for formats with a random body, or a `validator` (see
`validators.py`) when the format has structure to check. Then add a positive
and a negative case to `tests/data/secret_cases.py`.
"""

from gateway.detection.secrets.detector import RULES, SecretDetector
from gateway.detection.secrets.rule import Rule, Verdict, rule

__all__ = ["RULES", "Rule", "SecretDetector", "Verdict", "rule"]
