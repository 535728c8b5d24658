"""Actions by name. A policy names an action; `get_action` finds its class."""

from gateway.actions.allow import Allow
from gateway.actions.base import Action, ActionContext, Issued
from gateway.actions.block import Block
from gateway.actions.consistent import Consistent
from gateway.actions.encrypt import Encrypt
from gateway.actions.fpe import FPE
from gateway.actions.hash import Hash
from gateway.actions.mask import Mask
from gateway.actions.redact import Redact
from gateway.actions.synthetic import Synthetic
from gateway.actions.tokenize import Tokenize

ACTIONS: dict[str, Action] = {a.name: a for a in (Allow(), Redact(), Mask(), Hash(), Block(), Tokenize(), Encrypt(), FPE(),
                                                  Synthetic(), Consistent())}


def get_action(name: str) -> Action:
    return ACTIONS[name]


__all__ = ["ACTIONS", "Action", "ActionContext", "Issued", "get_action"]
