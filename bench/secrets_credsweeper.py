"""CredSweeper (MIT, PyPI `credsweeper`) on the same fixtures as bench/secrets_recall.py.

Run in an environment that has credsweeper (it is not a vendorgate dependency):
    python -m venv /tmp/cs && /tmp/cs/bin/pip install credsweeper==1.19.5
    /tmp/cs/bin/python bench/secrets_credsweeper.py [--ml-threshold 0]

Each fixture text is scanned as one in-memory file; a text counts as flagged when
CredSweeper reports any candidate. Prints recall / negatives flagged per source and
the scan time (CPU seconds, one process).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from secrets_recall import cases, report, score  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ml-threshold", default="auto",
                        help="CredSweeper's ML filter: 'auto' (its default) or 0 to keep every rule match")
    args = parser.parse_args()
    from credsweeper import CredSweeper
    from credsweeper.file_handler.string_content_provider import StringContentProvider

    threshold = args.ml_threshold if args.ml_threshold == "auto" else float(args.ml_threshold)
    sweeper = CredSweeper(ml_threshold=threshold)
    all_cases = cases()
    started = time.process_time()
    hits = []
    for i, case in enumerate(all_cases):
        provider = StringContentProvider(case["text"].splitlines(), file_path=f"case{i}.txt")
        hits.append(bool(sweeper.file_scan(provider)))
    elapsed = time.process_time() - started
    chars = sum(len(c["text"]) for c in all_cases)
    report(f"credsweeper (ml_threshold={args.ml_threshold})", score(all_cases, hits))
    print(f"  {len(all_cases)} texts, {chars:,} chars in {elapsed:.2f} s CPU: {chars / elapsed / 1e3:.1f} k chars/s")


if __name__ == "__main__":
    main()
