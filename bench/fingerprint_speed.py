"""Fingerprint index cost: lookup time per MB of outbound text, index bytes per MB indexed.

Run: .venv/bin/python bench/fingerprint_speed.py [--indexed-mb 5] [--outbound-mb 1]
     .venv/bin/python bench/fingerprint_speed.py --dsn postgresql://postgres@127.0.0.1:5432/test
       (the PostgreSQL store, in a fresh schema dropped afterwards: add, load and reload times, table size)
Indexed and outbound texts are fixed-seed word salad over a few thousand pseudo-words (prose mode); a second
run indexes the same amount as code (code mode, both modes then run per lookup).
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from gateway.detection.fingerprint import FingerprintIndex, Settings
from gateway.detection.fingerprint.fingerprints import KEY_PURPOSE, Fingerprinter
from gateway.keys import LocalKeyProvider

SYLLABLES = "ka re mi to lu sen dar vo pe qui nal bor tes ri ga fo mun del ix or ul pra ste".split()
WORDS = sorted({"".join(random.Random(i).choices(SYLLABLES, k=1 + i % 4)) for i in range(6000)})
MB = 1024 * 1024


def salad(seed: int, n_chars: int) -> str:
    rng = random.Random(seed)
    out, size = [], 0
    while size < n_chars:
        w = rng.choice(WORDS)
        out.append(w)
        size += len(w) + 1
    return " ".join(out)


def code_like(seed: int, n_chars: int) -> str:
    rng = random.Random(seed)
    lines, size = [], 0
    while size < n_chars:
        a, b = rng.choice(WORDS), rng.choice(WORDS)
        line = f"    if ({a}_{b} > {rng.randint(0, 999)}) {{ {b}.push({a}); }}  // {rng.choice(WORDS)}"
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines)


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def run_postgres(dsn: str, indexed_mb: float, outbound_mb: float, settings: Settings) -> None:
    import uuid

    import psycopg

    from gateway.detection.fingerprint.pgstore import PostgresFingerprintStore

    schema = f"vg_bench_{uuid.uuid4().hex[:8]}"
    store = PostgresFingerprintStore(dsn, schema)
    try:
        run(indexed_mb, outbound_mb, settings, store)
        with psycopg.connect(dsn) as db:
            size = db.execute("SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n "
                              "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'", (schema,)).fetchone()[0]
        print(f"PostgreSQL tables (with TOAST and indexes), after the code document too: "
              f"{int(size) / (indexed_mb + 0.5) / 1024:.0f} KiB per MB indexed")
    finally:
        store.close()
        with psycopg.connect(dsn, autocommit=True) as db:
            db.execute(f"DROP SCHEMA {schema} CASCADE")


def run(indexed_mb: float, outbound_mb: float, settings: Settings, store=None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        keys = LocalKeyProvider.in_data_dir(data)
        index = FingerprintIndex(store, keys, settings) if store else FingerprintIndex.in_data_dir(data, keys, settings)
        n_docs = 50
        doc_chars = int(indexed_mb * MB / n_docs)
        docs = [salad(i, doc_chars) for i in range(n_docs)]
        _, t_add = timed(lambda: [index.add("bench", f"doc{i}.txt", d) for i, d in enumerate(docs)])
        size_before = sum(p.stat().st_size for p in data.glob("fingerprints.sqlite*"))
        index.store.compact()
        size = sum(p.stat().st_size for p in data.glob("fingerprints.sqlite*"))
        if store is None:
            print(f"index size as written (with WAL): {size_before / indexed_mb / 1024:.0f} KiB per MB indexed")
        n_fp = sum(d.n_fingerprints for d in index.list())
        print(f"k={settings.k} t={settings.t} w={settings.w}")
        print(f"indexed {indexed_mb:.1f} MB prose in {n_docs} docs: {t_add:.1f} s ({indexed_mb / t_add:.2f} MB/s), "
              f"{n_fp} fingerprints ({n_fp / indexed_mb:.0f}/MB)")
        if store is None:
            print(f"index size after compact(): {size / indexed_mb / MB:.2f} bytes of SQLite per byte indexed "
                  f"({size / indexed_mb / 1024:.0f} KiB per MB)")
        _, t_load = timed(index.match, "warm up")
        print(f"first match (loads hashes into memory): {t_load * 1000:.0f} ms")

        outbound = salad(10_000, int(outbound_mb * MB))
        _, t_clean = timed(index.match, outbound)
        leaked = outbound[: len(outbound) // 2] + docs[3][:20_000] + outbound[len(outbound) // 2 :]
        matches, t_leak = timed(index.match, leaked)
        print(f"lookup, unrelated text: {t_clean / outbound_mb * 1000:.0f} ms/MB ({outbound_mb / t_clean:.2f} MB/s)")
        print(f"lookup, text carrying 20 kB of a document: {t_leak / outbound_mb * 1000:.0f} ms/MB, "
              f"matched {[m.path for m in matches]}")
        small = outbound[:4096]
        n = 200
        _, t_small = timed(lambda: [index.match(small) for _ in range(n)])
        print(f"lookup, 4 KiB request: {t_small / n * 1000:.2f} ms each")

        fp = Fingerprinter(keys.derive(KEY_PURPOSE), settings)
        _, t_fp = timed(fp.fingerprints, outbound, "prose")
        print(f"  of which fingerprinting (normalise + winnow + HMAC): {t_fp / outbound_mb * 1000:.0f} ms/MB")

        index.add("bench-code", "lib.c", code_like(1, int(MB // 2)))
        _, t_reload = timed(index.match, "warm up")
        print(f"reload after the index changed: {t_reload * 1000:.0f} ms")
        _, t_both = timed(index.match, outbound)
        print(f"lookup with code documents too (prose + code passes): {t_both / outbound_mb * 1000:.0f} ms/MB")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--indexed-mb", type=float, default=5.0)
    parser.add_argument("--outbound-mb", type=float, default=1.0)
    parser.add_argument("-k", type=int, default=Settings().k)
    parser.add_argument("-t", type=int, default=Settings().t)
    parser.add_argument("--dsn", help="measure the PostgreSQL store instead of SQLite")
    args = parser.parse_args()
    if args.dsn:
        run_postgres(args.dsn, args.indexed_mb, args.outbound_mb, Settings(k=args.k, t=args.t))
    else:
        run(args.indexed_mb, args.outbound_mb, Settings(k=args.k, t=args.t))


if __name__ == "__main__":
    main()
