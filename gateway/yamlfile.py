"""YAML loading that remembers where each key was written.

Config and policy errors must name the file, the line and the field, so a
security engineer can fix a policy without reading our source.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError


class FileError(Exception):
    """A config or policy file is wrong; the message says where and why."""

    def __init__(self, path: Path | str, problems: list[str]):
        self.path = str(path)
        self.problems = problems
        super().__init__("\n".join(f"{self.path}:{p}" for p in problems))


@dataclass
class LoadedYaml:
    path: Path
    data: Any
    lines: dict[tuple, int]

    def line_of(self, loc: tuple) -> int | None:
        """Line of the deepest known key on `loc`."""
        for n in range(len(loc), -1, -1):
            line = self.lines.get(tuple(loc[:n]))
            if line is not None:
                return line
        return None


class _LineLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _collect_lines(node: yaml.Node, loc: tuple, lines: dict[tuple, int]) -> None:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[loc + (key,)] = key_node.start_mark.line + 1
            _collect_lines(value_node, loc + (key,), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _collect_lines(item, loc + (i,), lines)


def load_yaml(path: Path | str) -> LoadedYaml:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileError(path, ["0: file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FileError(path, [f"0: cannot read: {type(exc).__name__}"]) from None
    try:
        node = yaml.compose(text, Loader=_LineLoader)
        data = yaml.load(text, Loader=_LineLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark else 0
        problem = getattr(exc, "problem", None) or str(exc)
        raise FileError(path, [f"{line}: invalid YAML: {problem}"]) from None
    lines: dict[tuple, int] = {}
    if node is not None:
        _collect_lines(node, (), lines)
    return LoadedYaml(path, data, lines)


def validate(loaded: LoadedYaml, model: type[BaseModel], context: dict | None = None) -> BaseModel:
    """Validate with pydantic; turn its errors into `file:line: field: message`."""
    if not isinstance(loaded.data, dict):
        raise FileError(loaded.path, ["1: expected a mapping of settings at the top level"])
    try:
        return model.model_validate(loaded.data, context=context)
    except ValidationError as exc:
        raise FileError(loaded.path, [_describe(loaded, err) for err in exc.errors()]) from None


def _describe(loaded: LoadedYaml, err: dict) -> str:
    loc = tuple(part for part in err["loc"] if not (isinstance(part, str) and "[" in part))
    field = ".".join(str(p) for p in loc) or "(top level)"
    line = loaded.line_of(loc) or 0
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key (check the spelling; unknown keys are not ignored)"
    elif err["type"] == "missing":
        msg = "required key is missing"
    return f"{line}: {field}: {msg}"
