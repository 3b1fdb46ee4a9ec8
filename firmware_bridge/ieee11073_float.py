"""IEEE 11073-20601 SFLOAT (16-bit) and FLOAT (32-bit) numbers, as used by BLE GATT and IntelliVue.

Source: ../shared/REFERENCES.md ("Bluetooth GATT health characteristics"), after
HL7/phd MderFLOATsandSFLOATs.md. value = mantissa x 10^exponent, both parts
two's complement: SFLOAT has a 4-bit exponent and 12-bit mantissa, FLOAT an 8-bit
exponent and 24-bit mantissa. The exponent is NOT biased (the Python package
bluetooth-sig-python treats it as biased: that is wrong, its vectors are not used).

Special values (reported as NaN/inf plus a :class:`Special` tag):
NaN FLOAT 0x007FFFFF / SFLOAT 0x07FF; NRes 0x00800000 / 0x0800;
+INF 0x007FFFFE / 0x07FE; -INF 0x00800002 / 0x0802; reserved 0x00800001 / 0x0801.
"""

from __future__ import annotations

import enum
import math


class Special(enum.Enum):
    NONE = "none"
    NAN = "nan"
    NRES = "nres"
    POS_INF = "+inf"
    NEG_INF = "-inf"
    RESERVED = "reserved"


_FLOAT_SPECIAL = {
    0x7FFFFF: (math.nan, Special.NAN),
    0x800000: (math.nan, Special.NRES),
    0x7FFFFE: (math.inf, Special.POS_INF),
    0x800002: (-math.inf, Special.NEG_INF),
    0x800001: (math.nan, Special.RESERVED),
}
_SFLOAT_SPECIAL = {
    0x07FF: (math.nan, Special.NAN),
    0x0800: (math.nan, Special.NRES),
    0x07FE: (math.inf, Special.POS_INF),
    0x0802: (-math.inf, Special.NEG_INF),
    0x0801: (math.nan, Special.RESERVED),
}
_POW10 = {e: 10.0**e for e in range(-128, 128)}


def decode_float(raw: int) -> tuple[float, Special]:
    """32-bit FLOAT -> (value, special). Values are rounded to the precision the exponent gives."""
    mant = raw & 0xFFFFFF
    special = _FLOAT_SPECIAL.get(mant)
    if special is not None and (raw >> 24) == 0:
        return special
    exp = raw >> 24
    if exp >= 0x80:
        exp -= 0x100
    if mant >= 0x800000:
        mant -= 0x1000000
    return _scaled(mant, exp), Special.NONE


def decode_sfloat(raw: int) -> tuple[float, Special]:
    """16-bit SFLOAT -> (value, special)."""
    mant = raw & 0x0FFF
    exp = raw >> 12
    special = _SFLOAT_SPECIAL.get(mant)
    if special is not None and exp == 0:
        return special
    if exp >= 0x8:
        exp -= 0x10
    if mant >= 0x800:
        mant -= 0x1000
    return _scaled(mant, exp), Special.NONE


def _scaled(mant: int, exp: int) -> float:
    if exp >= 0:
        return float(mant * 10**exp)
    return round(mant * _POW10[exp], -exp)


def encode_float(value: float, digits: int = 2, trim: bool = True) -> int:
    """float -> 32-bit FLOAT with ``digits`` decimals (trailing zeros trimmed unless ``trim`` is False)."""
    if math.isnan(value):
        return 0x007FFFFF
    if math.isinf(value):
        return 0x007FFFFE if value > 0 else 0x00800002
    exp = -digits
    mant: int = round(value * _POW10[digits])
    while trim and mant != 0 and mant % 10 == 0 and exp < 0:
        mant //= 10
        exp += 1
    while not -0x7FFFFD <= mant <= 0x7FFFFD:
        mant = round(mant / 10)
        exp += 1
    return ((exp & 0xFF) << 24) | (mant & 0xFFFFFF)


def encode_sfloat(value: float, digits: int = 1, trim: bool = True) -> int:
    """float -> 16-bit SFLOAT with ``digits`` decimals (trailing zeros trimmed unless ``trim`` is False)."""
    if math.isnan(value):
        return 0x07FF
    if math.isinf(value):
        return 0x07FE if value > 0 else 0x0802
    exp = -digits
    mant: int = round(value * _POW10[digits])
    while trim and mant != 0 and mant % 10 == 0 and exp < 0:
        mant //= 10
        exp += 1
    while not -0x7FD <= mant <= 0x7FD:
        mant = round(mant / 10)
        exp += 1
    if not -8 <= exp <= 7:
        raise ValueError(f"{value} does not fit an SFLOAT")
    return ((exp & 0xF) << 12) | (mant & 0x0FFF)
