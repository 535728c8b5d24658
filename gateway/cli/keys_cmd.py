"""`vendorgate keys init`: the one way, besides first start on an empty data dir, to make a master key."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def _data_dir(args) -> Path:
    from gateway.config import DEFAULT_DATA_DIR, load_config

    if args.data_dir:
        return Path(args.data_dir).resolve()
    if args.config:
        return load_config(args.config).data_dir
    return (Path.cwd() / DEFAULT_DATA_DIR).resolve()


def cmd_init(args) -> int:
    from gateway.keys import ENV_VAR, KEY_FILE_NAME, LocalKeyProvider, data_dir_state

    data_dir = _data_dir(args)
    path = data_dir / KEY_FILE_NAME
    if path.exists():
        print(f"error: {path} already exists; `vendorgate keys rotate` adds a key to it", file=sys.stderr)
        return 2
    if os.environ.get(ENV_VAR):
        print(f"error: ${ENV_VAR} is set, so the gateway takes its key from there and would ignore {path}; "
              "unset it to use a key file", file=sys.stderr)
        return 2
    state = data_dir_state(data_dir)
    if state and not args.force:
        print(f"error: {data_dir} holds {', '.join(state)}, protected by a key that is not here: restore "
              f"{KEY_FILE_NAME} from your backup. Only if it is lost for good, `keys init --force` starts a new key "
              "(old tokens, encrypted values and the audit log's head can then no longer be read or verified)",
              file=sys.stderr)
        return 2
    LocalKeyProvider(path, env={}, create=True)
    print(f"new master key in {path} (mode 0600): back it up now")
    return 0


def register(subparsers) -> None:
    """`subparsers` is the `keys` command's sub-command group."""
    k = subparsers.add_parser("init", help="create the data dir's master key (refuses if state exists without --force)",
                              description="Create keys.json in the data dir. The gateway also does this on first "
                                          "start, but only in an empty data dir.")
    k.add_argument("--force", action="store_true",
                   help="create a new key even though the data dir holds state made with another (lost) key")
    k.add_argument("--data-dir", help="data dir (default ./.vendorgate/)")
    k.add_argument("--config", help="take the data dir from this config")
    k.set_defaults(func=cmd_init)
