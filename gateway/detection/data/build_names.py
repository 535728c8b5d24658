"""Build names.tsv.gz (the given-name/surname lexicon) from the `names-dataset` package.

names-dataset (Philippe Remy, MIT licence, see NAMES-LICENSE) ranks first and
last names per country (105 countries). We keep, per kind, every name ranked
within the top N of at least one country, with its best rank, so the runtime
needs neither the package nor its 3 GB in memory. Not derived from Faker
(the benchmarks' test data is Faker-generated).

Run (needs `pip install names-dataset==3.3.1`, not a runtime dependency):
    python gateway/detection/data/build_names.py [--first 3000] [--last 5000]
"""

from __future__ import annotations

import argparse
import gzip
import pickle
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).parent


def load(path: Path) -> dict:
    with gzip.open(path, "rb") as f:
        return pickle.load(f)


def best_ranks(table: dict, top: int) -> dict[str, int]:
    kept = {}
    for name, info in table.items():
        ranks = [r for r in (info.get("rank") or {}).values() if r is not None]
        if ranks and min(ranks) <= top and 2 <= len(name) <= 30:
            kept[name] = min(ranks)
    return kept


def main() -> int:
    import names_dataset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first", type=int, default=3000)
    parser.add_argument("--last", type=int, default=5000)
    args = parser.parse_args()
    root = Path(names_dataset.__file__).parent / "v3"
    first = best_ranks(load(root / "first_names.pkl.gz"), args.first)
    last = best_ranks(load(root / "last_names.pkl.gz"), args.last)
    version = metadata.version("names-dataset")
    out = HERE / "names.tsv.gz"
    with gzip.open(out, "wt", encoding="utf-8", compresslevel=9) as f:
        f.write(f"# names-dataset {version} (MIT); first top {args.first}, last top {args.last} per country\n")
        for kind, table in (("F", first), ("L", last)):
            for name in sorted(table):
                f.write(f"{kind}\t{name}\t{table[name]}\n")
    print(f"{out}: {len(first)} given names, {len(last)} surnames")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
