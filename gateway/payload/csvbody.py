"""CSV (and TSV) bodies: header-aware column rules, read row by row.

The first row is the header; `column:` rules match its names. A dropped
column disappears from the header and every row. A row with a different number
of fields than the header is a bad line (`bad_lines: block` refuses the
request naming the line; `drop` leaves the row out). Rows are re-written with
the csv module, so quoting may change when anything was replaced.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterator

from gateway.payload.fields import BodyError, Field
from gateway.payload.rules import field_outcome
from gateway.payload.units import Unit
from gateway.policy.fields import WholeValue


def _writer_line(values: list[str], delimiter: str, terminator: str) -> bytes:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator=terminator).writerow(values)
    return out.getvalue()


class _ViewReader(io.RawIOBase):
    """Reads a body in place: `io.BytesIO` would copy a bytearray body whole."""

    def __init__(self, data: bytes):
        self._view = memoryview(data)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), len(self._view) - self._pos)
        buffer[:n] = self._view[self._pos:self._pos + n]
        self._pos += n
        return n


def csv_units(body: bytes, charset: str, mtype: str, shape) -> Iterator[Unit]:
    delimiter = "\t" if mtype == "text/tab-separated-values" else ","
    terminator = "\r\n" if b"\r\n" in body[:65536] else "\n"
    stream = io.TextIOWrapper(io.BufferedReader(_ViewReader(body)), encoding=charset, newline="")
    reader = csv.reader(stream, delimiter=delimiter, strict=True)
    rules = shape.rules

    def rows():
        try:
            for row in reader:
                yield reader.line_num, row
        except csv.Error as exc:
            raise BodyError(400, f"invalid CSV at line {reader.line_num}: {exc}") from None
        except UnicodeDecodeError as exc:
            raise BodyError(400, f"CSV body is not valid {charset} near line {reader.line_num + 1} (byte {exc.start})") from None
        except LookupError:
            raise BodyError(415, f"unknown charset {charset!r}") from None

    lines = rows()
    first = next(lines, None)
    if first is None:
        return
    header = first[1]
    chosen = [rules.column_rule(name.strip()) for name in header]
    verbs = [rules.rules[i].verb if i is not None else "scan" for i in chosen]
    keep = [i for i, verb in enumerate(verbs) if verb != "drop"]
    dropped = len(header) - len(keep)
    encoding = charset

    def row_unit(values: list[str], is_header: bool) -> Unit:
        fields: list[Field] = []
        actions: list[WholeValue | None] = []
        slots: list[int | str] = []
        unit = Unit(fields, actions, lambda r: b"", altered=bool(dropped), counts=Counter(drop=dropped) if dropped else Counter())
        for col in keep:
            value, name, verb = values[col], header[col].strip(), verbs[col]
            path = f"column:{name}"
            if is_header and name in rules.columns:
                slots.append(value)
                continue
            if is_header or verb == "scan":
                fields.append(Field(value, path, "key" if is_header else "value"))
                actions.append(None)
                slots.append(len(fields) - 1)
                continue
            outcome = field_outcome(rules.rules[chosen[col]], value)
            unit.counts.update(outcome.counts)
            unit.blocked = unit.blocked or outcome.blocked
            if outcome.action is not None:
                fields.append(Field(value, path))
                actions.append(outcome.action)
                slots.append(len(fields) - 1)
                continue
            slots.append(value)

        def emit(repl: dict[int, str]) -> bytes:
            out = [repl.get(s, fields[s].text) if isinstance(s, int) else s for s in slots]
            return _writer_line(out, delimiter, terminator).encode(encoding)

        unit.emit = emit
        return unit

    yield row_unit(header, True)
    for lineno, row in lines:
        if not row:
            continue
        if len(row) != len(header):
            if shape.bad_lines == "drop":
                yield Unit([], [], lambda r: b"", altered=True, counts=Counter(drop_line=1))
                continue
            raise BodyError(400, f"invalid CSV at line {lineno}: expected {len(header)} fields as in the header, found {len(row)}")
        yield row_unit(row, False)
