"""`vendorgate keys list|rotate`: the master keys (ids only, never key material)."""

from __future__ import annotations

import sys

from gateway.cli import keys_cmd
from gateway.cli.common import DATA_DIR_HELP, data_dir


def register(sub) -> None:
    s = sub.add_parser("keys", help="list and rotate master keys")
    ksub = s.add_subparsers(dest="keys_command", required=True, metavar="SUBCOMMAND")
    for name, func, helptext in (("list", list_keys, "key ids (never key material); the current one is marked"),
                                 ("rotate", rotate, "add a new current key; old keys stay to decrypt")):
        k = ksub.add_parser(name, help=helptext, description=helptext)
        k.add_argument("--data-dir", help=DATA_DIR_HELP)
        k.add_argument("--config", help="take the data dir from this config")
        k.set_defaults(func=func)
    keys_cmd.register(ksub)  # keys init


def rotate(args) -> int:
    from gateway.keys import KeyProviderError, LocalKeyProvider

    where = data_dir(args)
    try:
        new_id = LocalKeyProvider.existing(where).rotate()
    except KeyProviderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"new current key {new_id} in {where / 'keys.json'}; older keys still decrypt. "
          "Restart the gateway (every instance) to issue tokens with it.")
    return 0


def list_keys(args) -> int:
    import os

    from gateway.keys import ENV_VAR, KEY_FILE_NAME, KeyProviderError, LocalKeyProvider

    where = data_dir(args)
    if not os.environ.get(ENV_VAR) and not (where / KEY_FILE_NAME).exists():
        print(f"no key file in {where} (use --data-dir or --config)", file=sys.stderr)
        return 1
    try:
        keys = LocalKeyProvider.existing(where)
    except KeyProviderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    source = f"${ENV_VAR}" if os.environ.get(ENV_VAR) else str(where / KEY_FILE_NAME)
    for key_id in keys.key_ids():
        print(f"{key_id}{'  (current)' if key_id == keys.current_id() else ''}")
    print(f"{len(keys.key_ids())} key(s) from {source}")
    return 0
