"""The `vendorgate` command itself: its version and its command groups."""

from __future__ import annotations

import re
from importlib.metadata import version

import pytest

from gateway.cli.main import build_parser, main


def test_version_prints_the_installed_package_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"vendorgate {version('vendorgate')}\n"


def test_help_lists_every_command_group_in_order(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    names = ["serve", "demo-vendor", "scan", "fingerprint", "exposure", "policy", "audit", "report", "keys"]
    listed = re.findall(r"^    (\S+)", out, re.M)
    assert [n for n in listed if n in names] == names


def test_every_subcommand_has_a_handler():
    parser = build_parser()

    def leaves(p, path):
        sub = next((a for a in p._actions if a.__class__.__name__ == "_SubParsersAction"), None)
        if sub is None:
            yield path, p
            return
        for name, child in sub.choices.items():
            yield from leaves(child, [*path, name])

    found = list(leaves(parser, []))
    assert ["audit", "verify-proof"] in [path for path, _ in found] and len(found) >= 19
    for path, p in found:
        assert callable(p.get_default("func")), path
