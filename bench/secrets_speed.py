"""Throughput of the secrets layer on ~1 MB of prose, and of prose mixed with config text.

Run: .venv/bin/python bench/secrets_speed.py

Wall clock (mean of 5) and process CPU time (best of 5) per text; on a shared
machine compare the CPU figures, and trees only in alternating runs of one session.

"prose-only" has no secret (most request bodies); "prose-heavy" mixes in 10% config
blocks (about 760 secrets per MB), "config-heavy" 60% (about 5,300 per MB), where
the per-finding checks, not the regex scanning, take most of the time.
"""

from __future__ import annotations

import random
import string
import time

from gateway.detection.secrets import SecretDetector

PROSE = (
    "The quarterly report shows the team shipped the new billing flow, and the "
    "token budget for the assistant was raised. See commit 3f2a9c1b7e4d5f6a8b9c0d1e "
    "for details; the request id 123e4567-e89b-12d3-a456-426614174000 failed once. "
    "Please pass the key points to the customer before Friday, and keep the secret "
    "sauce of our pricing private. Authorization is handled by the gateway. "
)


def _random(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _config_block(rng: random.Random) -> str:
    alnum = string.ascii_letters + string.digits
    return (
        "[server]\nhost = api.internal\nport = 8443\ntimeout = 30\n"
        f"log_level = info\npath = /var/lib/app/data.json\nclient_secret = {_random(rng, alnum, 32)}\n"
        '{"user": "alice", "region": "eu-west-1", "retries": 3, "token_url": "https://x.test/t"}\n'
        f"GITHUB_TOKEN=ghp_{_random(rng, alnum, 36)}\nDB_URL=postgres://app:{_random(rng, alnum, 12)}@db/prod\n"
        f"Authorization: Bearer {_random(rng, alnum, 40)}\npassword: hunter2!\nkey_file: /etc/app/key.pem\n"
        f"slack: https://hooks.slack.com/services/T{_random(rng, string.ascii_uppercase, 8)}/B0000/{_random(rng, alnum, 24)}\n"
        f"AWS_ACCESS_KEY_ID=AKIA{_random(rng, string.ascii_uppercase, 16)}\n"
    )


def build_corpus(size: int = 1_000_000, seed: int = 7, config_share: float = 0.3) -> str:
    """Prose paragraphs mixed with config blocks that hold several secrets each."""
    rng = random.Random(seed)
    parts: list[str] = []
    total = 0
    while total < size:
        piece = _config_block(rng) if rng.random() < config_share else PROSE * 3
        parts.append(piece)
        total += len(piece)
    return "".join(parts)


def _measure(detector: SecretDetector, text: str, rounds: int = 5) -> tuple[float, float, int]:
    """Mean wall-clock seconds per detect, best process CPU seconds of `rounds`, findings."""
    started = time.perf_counter()
    best_cpu = float("inf")
    for _ in range(rounds):
        cpu = time.process_time()
        findings = detector.detect(text)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return (time.perf_counter() - started) / rounds, best_cpu, len(findings)


def main() -> None:
    detector = SecretDetector()
    detector.detect(build_corpus(10_000))
    for label, share in (("prose-only", 0.0), ("prose-heavy", 0.1), ("config-heavy", 0.6)):
        text = build_corpus(config_share=share)
        elapsed, cpu, found = _measure(detector, text)
        print(f"{label}: {len(text):,} chars, {found} findings, {elapsed * 1000:.0f} ms, "
              f"{len(text) / elapsed / 1e6:.2f} M chars/s wall clock, {len(text) / cpu / 1e6:.2f} M chars/s CPU (best)")


if __name__ == "__main__":
    main()
