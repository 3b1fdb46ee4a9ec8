"""IEEE 11073 SFLOAT/FLOAT and the BLE GATT health characteristics: REFERENCES.md vectors and fuzzing."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clinical.sample import Quality
from firmware_bridge.gatt import (
    PLX_DS_DISCONNECTED,
    PLX_DS_LOW_PERFUSION,
    PLX_DS_SENSOR_MALFUNCTION,
    SUPPORTED,
    GattDecoder,
    encode_hrm,
    encode_plx_continuous,
    encode_temperature,
    parse_characteristic,
    uuid16,
)
from firmware_bridge.ieee11073_float import Special, decode_float, decode_sfloat, encode_float, encode_sfloat
from tests.fw_fixtures import events, samples

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize(("raw", "value"), [(0xF014, 2.0), (0xE0C8, 2.0), (0x1002, 20.0), (0x0B2E, -1234.0)])
def test_sfloat_vectors(raw: int, value: float) -> None:
    assert decode_sfloat(raw) == (value, Special.NONE)


@pytest.mark.parametrize(("raw", "value"), [(0xFF000014, 2.0), (0x00FFFB2E, -1234.0), (0xFF000172, 37.0)])
def test_float_vectors(raw: int, value: float) -> None:
    assert decode_float(raw) == (value, Special.NONE)


@pytest.mark.parametrize(
    ("f32", "s16", "special"),
    [(0x007FFFFF, 0x07FF, Special.NAN), (0x00800000, 0x0800, Special.NRES), (0x007FFFFE, 0x07FE, Special.POS_INF),
     (0x00800002, 0x0802, Special.NEG_INF), (0x00800001, 0x0801, Special.RESERVED)],
)
def test_special_values(f32: int, s16: int, special: Special) -> None:
    assert decode_float(f32)[1] is special and decode_sfloat(s16)[1] is special
    if special is Special.POS_INF:
        assert decode_float(f32)[0] == math.inf
    elif special is Special.NEG_INF:
        assert decode_sfloat(s16)[0] == -math.inf
    else:
        assert math.isnan(decode_float(f32)[0]) and math.isnan(decode_sfloat(s16)[0])


def test_exponent_is_twos_complement_not_biased() -> None:
    assert decode_sfloat(0x8001)[0] == pytest.approx(1e-8)  # exponent -8
    assert decode_sfloat(0x7001)[0] == 1e7  # exponent +7
    assert decode_float(0x80000001)[0] == pytest.approx(1e-128)


@given(st.floats(-200, 200, allow_nan=False).map(lambda v: round(v, 1)))
@settings(max_examples=200, deadline=None)
def test_encode_decode_round_trip(v: float) -> None:
    assert decode_float(encode_float(v, 1))[0] == pytest.approx(v)
    assert decode_sfloat(encode_sfloat(v, 1))[0] == pytest.approx(v)


@pytest.mark.parametrize(
    ("uuid", "hexval", "expect"),
    [
        (0x2A37, "0050", [("heart_rate", 80.0)]),
        (0x2A37, "0e4b8000", [("heart_rate", 75.0)]),
        (0x2A37, "105a00080010", [("heart_rate", 90.0), ("rr_interval", 2.0), ("rr_interval", 4.0)]),
        (0x2A5E, "0062004800", [("spo2", 98.0), ("pulse_rate", 72.0)]),
        (0x2A35, "00780050005a00", [("nibp_sys", 120.0), ("nibp_dia", 80.0), ("nibp_mean", 90.0)]),
        (0x2A1C, "00720100ff", [("temperature", 37.0)]),
    ],
)
def test_reference_characteristics(uuid: int, hexval: str, expect: list[tuple[str, float]]) -> None:
    readings, conds = parse_characteristic(uuid, bytes.fromhex(hexval))
    assert [(n, v) for n, v, _q, _t in readings] == expect
    assert all(q == Quality.VALID for _n, _v, q, _t in readings) and conds == set()


def test_emulator_encodings_match_reference_bytes() -> None:
    assert encode_hrm(75, contact=True, energy_kj=128) == bytes.fromhex("0e4b8000")
    assert encode_hrm(90, contact=None, rr_s=[2.0, 4.0]) == bytes.fromhex("105a00080010")
    assert encode_hrm(80, contact=None) == bytes.fromhex("0050")
    assert encode_temperature(37.0) == bytes.fromhex("00720100ff")


def test_hrm_contact_lost_is_sensor_off() -> None:
    d = GattDecoder("2", "band")
    out = d.decode(0x2A37, bytes.fromhex("0400"), 0, 0)  # contact supported, not detected
    assert [(e.condition, e.active) for e in events(out)] == [("sensor_off", True)]
    assert math.isnan(samples(out)[0].value)
    back = d.decode(0x2A37, encode_hrm(70, contact=True), 1, 1)
    assert [(e.condition, e.active) for e in events(back)] == [("sensor_off", False)]


def test_plx_statuses() -> None:
    d = GattDecoder()
    off = d.decode(0x2A5F, encode_plx_continuous(97, 70, None, PLX_DS_DISCONNECTED), 0, 0)
    assert ("sensor_off", True) in [(e.condition, e.active) for e in events(off)]
    assert all(math.isnan(s.value) for s in samples(off))
    weak = samples(d.decode(0x2A5F, encode_plx_continuous(95, 70, 0.3, PLX_DS_LOW_PERFUSION), 0, 0))
    assert [s.parameter for s in weak] == ["spo2", "pulse_rate", "perfusion_index"]
    assert all(s.quality == Quality.QUESTIONABLE for s in weak) and weak[2].value == pytest.approx(0.3)
    fault = d.decode(0x2A5F, encode_plx_continuous(95, 70, None, PLX_DS_SENSOR_MALFUNCTION), 0, 0)
    assert ("probe_fault", True) in [(e.condition, e.active) for e in events(fault)]
    demo = samples(d.decode(0x2A5F, encode_plx_continuous(95, 70, None, None, 1 << 10), 0, 0))
    assert demo[0].quality == Quality.DEMO


def test_spot_check_with_timestamp_and_bp_in_kpa() -> None:
    spot = bytes.fromhex("01" "6200" "4800" "e807" "02" "1d" "0c" "1e" "00")  # 2024-02-29 12:30:00
    (spo2, _pr), _ = parse_characteristic(0x2A5E, spot)
    assert spo2[1] == 98 and spo2[3] == 1709209800.0
    kpa = bytes.fromhex("01" "a0f0" "aaf0" "fff0")  # 16.0 / 17.0 / 25.5 kPa (sic: order as sent)
    readings, _ = parse_characteristic(0x2A35, kpa)
    assert readings[0][1] == pytest.approx(120.0, abs=0.1)


def test_uuid_forms() -> None:
    assert uuid16("2a37") == uuid16("0x2A37") == uuid16("00002a37-0000-1000-8000-00805f9b34fb") == 0x2A37
    with pytest.raises(ValueError):
        uuid16("12345678-0000-1000-8000-00805f9b34fb")


@FUZZ
@given(st.sampled_from(SUPPORTED), st.binary(max_size=40))
def test_fuzz_every_characteristic_never_raises(uuid: int, value: bytes) -> None:
    d = GattDecoder()
    out = d.decode(uuid, value, 0, 0)
    assert d.stats.frames + d.stats.bad_frames == 1
    assert all(s.unit for s in samples(out))


TRUNCATE = [
    (0x2A37, encode_hrm(72, True, 10, [0.8, 0.9])),
    (0x2A5F, encode_plx_continuous(96, 72, 2.5, 0, 0)),
    (0x2A1C, encode_temperature(36.6)),
    (0x2A35, bytes.fromhex("00780050005a00")),
    (0x2A5E, bytes.fromhex("0f" "6200" "4800" "e807021d0c1e00" "0000" "000000" "2200")),
]


@FUZZ
@given(st.sampled_from(TRUNCATE), st.data())
def test_fuzz_truncation_is_counted_never_misread(case: tuple[int, bytes], data: st.DataObject) -> None:
    uuid, value = case
    full, _ = parse_characteristic(uuid, value)
    cut = data.draw(st.integers(0, len(value) - 1))
    d = GattDecoder()
    out = [(s.parameter, s.value) for s in samples(d.decode(uuid, value[:cut], 0, 0))]
    if d.stats.bad_frames == 0:
        # only an HRM cut between whole RR intervals is still a well-formed value: a prefix of the full one
        assert uuid == 0x2A37 and out == [(n, v) for n, v, _q, _t in full][: len(out)] and out
    else:
        assert out == []
