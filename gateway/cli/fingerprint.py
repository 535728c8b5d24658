"""`vendorgate fingerprint add|list|remove`: the index of protected documents."""

from __future__ import annotations

import sys
from pathlib import Path

from gateway.cli.common import DATA_DIR_HELP, data_dir
from gateway.cli.progress import progress
from gateway.config import load_config
from gateway.detection.fingerprint.location import IndexLocation


def register(sub) -> None:
    s = sub.add_parser("fingerprint", help="protected documents: index, list, remove")
    fsub = s.add_subparsers(dest="fingerprint_command", required=True, metavar="SUBCOMMAND")
    f = fsub.add_parser("add", help="index files or folders under a label", description=(
        "Fingerprint files and folders (recursively) so that outbound text carrying a passage of them yields "
        "PROTECTED_DOCUMENT. Code files (by extension) are normalised as code, others as prose."))
    f.add_argument("--label", required=True, help="name the documents are reported under (the finding's rule)")
    f.add_argument("paths", nargs="+", metavar="PATH")
    f.add_argument("-k", type=int, help="noise threshold, only when the index is created (default 32)")
    f.add_argument("-t", type=int, help="guarantee threshold, only when the index is created (default 64)")
    f.set_defaults(func=add)
    f = fsub.add_parser("list", help="list indexed documents")
    f.set_defaults(func=list_documents)
    f = fsub.add_parser("remove", help="remove every document of a label, or one by --id")
    f.add_argument("label", nargs="?", metavar="LABEL")
    f.add_argument("--id", type=int, help="remove the document with this id")
    f.set_defaults(func=remove)
    for f in fsub.choices.values():
        f.add_argument("--data-dir", help=DATA_DIR_HELP)
        f.add_argument("--config", help="take the data dir (and `fingerprints: {dsn}`, a PostgreSQL index) from this config")


def _where(args) -> IndexLocation:
    return IndexLocation.of(data_dir(args), load_config(args.config).config.fingerprints if args.config else None)


def add(args) -> int:
    from gateway.detection.fingerprint import scan_paths
    from gateway.detection.fingerprint.sources import read_text

    where = _where(args)
    try:
        index = _open_index(where, args.k, args.t)
    except ValueError as exc:
        print(f"error: {exc}")
        return 2
    scan = scan_paths([Path(p) for p in args.paths])
    with progress("indexing", total=len(scan.files)) as bar:
        for path in scan.files:
            bar.describe(f"indexing {path.name}")
            info = index.add(args.label, path.resolve(), read_text(path))
            bar.advance()
            print(f"indexed  {path}  ({info.mode}, {info.normalised_length} chars, {info.n_fingerprints} fingerprints)",
                  flush=True)
    for skipped in scan.skipped:
        print(f"skipped  {skipped.path}: {skipped.reason}")
    index.store.compact()
    print(f"{len(scan.files)} file(s) indexed under label {args.label!r}, {len(scan.skipped)} skipped; "
          f"index in {where.describe()}; {_guarantee(index)}")
    return 0 if scan.files else 1


def list_documents(args) -> int:
    index = _existing_index(_where(args))
    if index is None:
        return 0
    docs = index.list()
    print(f"{'ID':>5}  {'LABEL':<20} {'MODE':<6} {'CHARS':>9} {'FPRINTS':>8}  PATH")
    for d in docs:
        print(f"{d.doc_id:>5}  {d.label[:20]:<20} {d.mode:<6} {d.normalised_length:>9} {d.n_fingerprints:>8}  {d.path}")
    labels = sorted({d.label for d in docs})
    print(f"{len(docs)} document(s) under {len(labels)} label(s); {_guarantee(index)}")
    return 0


def remove(args) -> int:
    where = _where(args)
    if (args.label is None) == (args.id is None):
        print("error: give a LABEL or --id N", file=sys.stderr)
        return 2
    index = _existing_index(where)
    if index is None:
        return 1
    removed = index.remove(args.id if args.id is not None else args.label)
    index.store.compact()
    what = f"id {args.id}" if args.id is not None else f"label {args.label!r}"
    print(f"removed {removed} document(s) with {what}")
    return 0 if removed else 1


def _open_index(where: IndexLocation, k: int | None = None, t: int | None = None):
    from gateway.detection.fingerprint import FingerprintIndex
    from gateway.detection.fingerprint import Settings as IndexSettings
    from gateway.keys import LocalKeyProvider

    wanted = None
    if k is not None or t is not None:
        default = IndexSettings()
        wanted = IndexSettings(k=k or default.k, t=t or default.t)
    keys = LocalKeyProvider.in_data_dir(Path(where.data_dir))  # before the store: a fresh data dir gets its key
    return FingerprintIndex(where.open_store(), keys, wanted)


def _existing_index(where: IndexLocation):
    """The index, or None (after saying so) when nothing was ever indexed there."""
    store = where.open_existing()
    if store is None:
        print(f"no fingerprint index in {where.describe()} (use `vendorgate fingerprint add`, --data-dir or --config)")
        return None
    from gateway.detection.fingerprint import FingerprintIndex
    from gateway.keys import LocalKeyProvider

    return FingerprintIndex(store, LocalKeyProvider.in_data_dir(Path(where.data_dir)))


def _guarantee(index) -> str:
    s = index.settings
    return (f"k={s.k} t={s.t}: any shared passage of {s.t}+ normalised characters is found; "
            f"nothing shorter than {s.k} ever is")
