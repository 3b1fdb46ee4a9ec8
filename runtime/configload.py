"""Load a TOML file into a frozen config model, with errors that name key and line.

``load(path, Model)`` returns the validated model or raises :class:`ConfigError`
whose message lists every problem as ``file:line: key.path: what is wrong``.

Validation is strict (pydantic strict mode, in its JSON flavour since TOML's types are JSON's plus
dates): a string is never taken for a number or a boolean (``port = "8080"``, ``raw = "no"``,
``raw_days = "30"`` are errors), an integer is accepted where a float belongs, a string where a path
belongs. After the types, a model's ``reference_problems()`` (e.g. a device on a bed that no
``[[beds]]`` table defines) returns ``(key path, message)`` pairs, reported with their lines too.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"'.]+)\s*=")


Loc = tuple[str | int, ...]


class ConfigError(ValueError):
    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__("\n".join(problems))


def _clean(key: str) -> list[str]:
    return [p.strip().strip("\"'") for p in key.split(".")]


def key_lines(text: str) -> dict[tuple[str | int, ...], int]:
    """Map each key path (array-of-table indexes as ints) to its 1-based line."""
    lines: dict[tuple[str | int, ...], int] = {}
    table: tuple[str | int, ...] = ()
    counts: dict[tuple[str | int, ...], int] = {}
    for n, line in enumerate(text.splitlines(), 1):
        m = _HEADER.match(line)
        if m and not _KEY.match(line):
            parts: tuple[str | int, ...] = tuple(_clean(m.group(2)))
            if m.group(1) == "[[":
                idx = counts.get(parts, -1) + 1
                counts[parts] = idx
                table = (*parts, idx)
            else:
                table = parts
            lines.setdefault(table, n)
            continue
        k = _KEY.match(line)
        if k:
            lines.setdefault((*table, *_clean(k.group(1))), n)
    return lines


def _line_for(loc: tuple[str | int, ...], lines: dict[tuple[str | int, ...], int]) -> int | None:
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def load(path: Path, model: type[M]) -> M:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(path, [f"{path}: cannot read: {exc.strerror}"]) from None
    return loads(text, model, path)


def loads(text: str, model: type[M], path: Path = Path("<config>")) -> M:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, [f"{path}: TOML syntax error: {exc}"]) from None
    try:
        cfg = model.model_validate_json(json.dumps(data, default=str), strict=True)
    except ValidationError as exc:
        errors = []
        for err in exc.errors():
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            elif err["type"] == "missing":
                msg = "required key is missing"
            errors.append((_key_path(data, err["loc"]), msg))
        raise ConfigError(path, located(text, path, errors)) from None
    refs = getattr(cfg, "reference_problems", None)
    if callable(refs):
        found: list[tuple[Loc, str]] = refs()
        if found:
            raise ConfigError(path, located(text, path, found))
    return cfg


def located(text: str, path: Path, errors: list[tuple[Loc, str]]) -> list[str]:
    """``file:line: key.path: message`` for each (key path, message)."""
    lines = key_lines(text)
    out = []
    for keyed, msg in errors:
        line = _line_for(keyed, lines)
        where = f"{path}:{line}" if line else str(path)
        key = ".".join(str(p) for p in keyed) or "(top level)"
        out.append(f"{where}: {key}: {msg}")
    return out


def _key_path(data: object, loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """The error's location as keys of the file, without union tags pydantic inserts."""
    out: list[str | int] = []
    node = data
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, dict):
            if part in node:
                node = node[part]
            elif not last or part in node.values():
                continue  # a union tag such as 'masimo' (the discriminator's value), not a key
            out.append(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
            out.append(part)
        else:
            out.append(part)
            node = None
    return tuple(out)
