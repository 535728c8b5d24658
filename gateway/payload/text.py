"""Which kind of body a media type is, what the policy says about structure
(`Shape`), and the plainest unit: a whole text body. Every reader uses these."""

from __future__ import annotations

from gateway.payload.fields import BodyError, Field
from gateway.payload.units import Unit
from gateway.policy.fields import RuleSet

JSON_LINES = ("application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonl",
              "application/jsonlines", "application/x-jsonlines", "application/json-lines")
CSV_TYPES = ("text/csv", "application/csv", "text/tab-separated-values")
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"


class Shape:
    """What the policy says about structure, for the format readers."""

    def __init__(self, rules: RuleSet, nested_json: bool, bad_lines: str, unknown_content: str):
        self.rules = rules
        self.nested_json = nested_json
        self.bad_lines = bad_lines
        self.unknown_content = unknown_content


def kind_of(mtype: str) -> str | None:
    if mtype == "application/json" or mtype.endswith("+json"):
        return "json"
    if mtype in JSON_LINES:
        return "jsonl"
    if mtype in CSV_TYPES:
        return "csv"
    if mtype == FORM:
        return "form"
    if mtype == MULTIPART:
        return "multipart"
    if mtype.startswith("text/"):
        return "text"
    return None


def decode_text(body: bytes, charset: str, where: str = "") -> str:
    try:
        return body.decode(charset)
    except LookupError:
        raise BodyError(415, f"unknown charset {charset!r}") from None
    except UnicodeDecodeError as exc:
        raise BodyError(400, f"body{where} is not valid {charset} (byte {exc.start})") from None


def text_unit(text: str, charset: str, original: bytes) -> Unit:
    def emit(repl: dict[int, str]) -> bytes:
        return repl[0].encode(charset) if repl else original

    return Unit([Field(text, "$")], [None], emit)
