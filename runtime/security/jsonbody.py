"""Bounded JSON request bodies and checked numbers: hostile input gets a 4xx, never a traceback.

``read_json`` refuses a body that is not ``application/json`` (415: a
cross-site form cannot send it without a CORS preflight, which no PulseGate
listener grants), larger than the limit (413), nested deeper than the limit
(400, found by a linear scan *before* ``json.loads`` could recurse), not JSON,
holding NaN/Infinity, or not an object (400).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from aiohttp import web

MAX_BODY_BYTES = 64 * 1024
MAX_DEPTH = 32
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


class BodyError(ValueError):
    pass


def nesting_depth(text: str, limit: int) -> int:
    """The deepest nesting of arrays/objects in ``text`` (strings skipped), stopping once past ``limit``."""
    depth = deepest = 0
    for m in _TOKENS.finditer(text):
        c = m.group()
        if c in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif c in "]}":
            depth -= 1
    return deepest


def _no_constants(name: str) -> Any:
    raise BodyError(f"{name} is not a JSON number")


def parse_json_object(raw: bytes, max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BodyError("body is not UTF-8") from None
    if nesting_depth(text, max_depth) > max_depth:
        raise BodyError(f"body nests deeper than {max_depth}")
    try:
        body = json.loads(text, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:
        raise BodyError("body is not JSON" if not isinstance(exc, BodyError) else str(exc)) from None
    if not isinstance(body, dict):
        raise BodyError("body must be a JSON object")
    return body


async def read_json(request: web.Request, max_bytes: int = MAX_BODY_BYTES, max_depth: int = MAX_DEPTH
                    ) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(text="send application/json")
    if request.content_length is not None and request.content_length > max_bytes:
        raise web.HTTPRequestEntityTooLarge(max_size=max_bytes, actual_size=request.content_length)
    raw = await request.content.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise web.HTTPRequestEntityTooLarge(max_size=max_bytes, actual_size=len(raw))
    try:
        return parse_json_object(raw, max_depth)
    except BodyError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None


def finite_number(value: object, name: str, lo: float, hi: float) -> float:
    """``value`` as a float in [lo, hi]; BodyError for a bool, a string, NaN, an infinity or out of range."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BodyError(f"{name} must be a number")
    v = float(value)
    if not math.isfinite(v):
        raise BodyError(f"{name} must be finite")
    if not lo <= v <= hi:
        raise BodyError(f"{name} must be between {lo:g} and {hi:g}")
    return v
