"""IntelliVue Data Export PDUs: build the gateway's requests, the monitor's replies, and parse numerics.

Sources (../shared/REFERENCES.md): Philips IntelliVue Data Export Interface
Programming Guide; xeonfusion/VSCaptureMP Class2.cs (DataConstants byte arrays:
aarq_msg, mds_create_resp_msg, poll_request_msg, ext_poll_request_msg, rlrq_msg)
and Class1.cs (reply parsing); mdpnp/mdpnp devices/philips/.../intellivue.

Layout of a data PDU (all big-endian): SPpdu ``E1 00 00 02`` | ROapdus
{ro_type, length} | ROIV/RORS {invoke_id, command_type, length} (ROLRS adds a
linked-id {state, count} first) | ActionArgument/ActionResult/EventReport... A
poll reply carries PollInfoList -> SingleContextPoll -> ObservationPoll
{obj_handle, AttributeList} with NOM_ATTR_NU_VAL_OBS (NuObsValue: physio_id,
MeasurementState, unit_code, FLOAT) or NOM_ATTR_NU_CMPD_VAL_OBS (NIBP sys/dia/mean).
Association-layer messages (AARQ/AARE/release/abort) start with a session SPDU
byte instead of 0xE1.
"""

from __future__ import annotations

import calendar
import struct
from dataclasses import dataclass

from clinical.sample import Quality

SPPDU = b"\xe1\x00\x00\x02"
# session SPDU types (first byte of association-layer messages)
CN_SPDU = 0x0D  # association request (AARQ)
AC_SPDU = 0x0E  # association accepted (AARE)
RF_SPDU = 0x0C  # association refused
FN_SPDU = 0x09  # release request
DN_SPDU = 0x0A  # release response
AB_SPDU = 0x19  # abort

ROIV_APDU, RORS_APDU, ROER_APDU, ROLRS_APDU = 1, 2, 3, 5
CMD_EVENT_REPORT, CMD_CONFIRMED_EVENT_REPORT, CMD_GET, CMD_CONFIRMED_ACTION = 0, 1, 3, 7
NOM_MOC_VMO_METRIC_NU = 6
NOM_MOC_VMS_MDS = 33
NOM_PART_OBJ = 1
NOM_PART_SCADA = 2
NOM_ACT_POLL_MDIB_DATA = 3094  # 0x0C16
NOM_ACT_POLL_MDIB_DATA_EXT = 61755  # 0xF13B
NOM_NOTI_MDS_CREAT = 3334  # 0x0D06
NOM_ATTR_ID_TYPE = 0x0921
NOM_ATTR_ID_LABEL_STRING = 0x0927
NOM_ATTR_NU_CMPD_VAL_OBS = 0x094B
NOM_ATTR_NU_VAL_OBS = 0x0950
NOM_ATTR_SYS_TYPE = 0x0986
NOM_ATTR_TIME_ABS = 0x0987
NOM_ATTR_TIME_STAMP_ABS = 0x0990
NOM_ATTR_TIME_PD_POLL = 0xF13E

# MeasurementState bits
MS_INVALID = 0x8000
MS_QUESTIONABLE = 0x4000
MS_UNAVAILABLE = 0x2000
MS_CALIBRATION_ONGOING = 0x1000
MS_TEST_DATA = 0x0800
MS_DEMO_DATA = 0x0400

# physio id -> parameter short name (REFERENCES.md "Physio ids")
PHYSIO: dict[int, str] = {
    16770: "heart_rate",  # NOM_ECG_CARD_BEAT_RATE
    18466: "pulse_rate",  # NOM_PLETH_PULS_RATE
    18949: "nibp_sys",  # NOM_PRESS_BLD_NONINV_SYS
    18950: "nibp_dia",
    18951: "nibp_mean",
    19272: "temperature",  # NOM_TEMP
    19376: "perfusion_index",  # NOM_PULS_OXIM_PERF_REL
    19384: "spo2",  # NOM_PULS_OXIM_SAT_O2
    20490: "resp_rate",  # NOM_RESP_RATE
}
PHYSIO_ID = {v: k for k, v in PHYSIO.items()}
NOM_PRESS_BLD_NONINV = 18948
# unit code -> (UCUM unit of our registry, scale, offset) converting to it
UNIT_PERCENT, UNIT_BPM, UNIT_RPM, UNIT_MMHG, UNIT_KPA, UNIT_DEGC, UNIT_DEGF = 544, 2720, 2784, 3872, 3843, 6048, 4416
UNITS: dict[int, tuple[float, float]] = {
    UNIT_PERCENT: (1.0, 0.0),
    UNIT_BPM: (1.0, 0.0),
    UNIT_RPM: (1.0, 0.0),
    UNIT_MMHG: (1.0, 0.0),
    UNIT_KPA: (7.500617, 0.0),
    UNIT_DEGC: (1.0, 0.0),
    UNIT_DEGF: (5.0 / 9.0, -32.0 * 5.0 / 9.0),
}
PARAM_UNIT = {
    "heart_rate": UNIT_BPM, "pulse_rate": UNIT_BPM, "resp_rate": UNIT_RPM, "spo2": UNIT_PERCENT,
    "perfusion_index": UNIT_PERCENT, "nibp_sys": UNIT_MMHG, "nibp_dia": UNIT_MMHG, "nibp_mean": UNIT_MMHG,
    "temperature": UNIT_DEGC,
}


def state_quality(state: int) -> Quality:
    """MeasurementState -> quality flags (INVALID and UNAVAILABLE both mean: no usable number)."""
    q = Quality.VALID
    if state & (MS_INVALID | MS_UNAVAILABLE):
        q |= Quality.UNAVAILABLE
    if state & MS_QUESTIONABLE:
        q |= Quality.QUESTIONABLE
    if state & MS_CALIBRATION_ONGOING:
        q |= Quality.CALIBRATING
    if state & MS_TEST_DATA:
        q |= Quality.TEST
    if state & MS_DEMO_DATA:
        q |= Quality.DEMO
    return q


# -- gateway -> monitor ------------------------------------------------------------
# Association request for the MIB/RS232 port: VSCaptureMP DataConstants.aarq_msg (poll profile,
# min poll period 0x09C4 (2500 x 1/8 ms), max 0x09C4, ...).
AARQ = bytes.fromhex(
    "0dec0508130100160102800014020002c1dc3180a0808001010000a280a003000001a480308002010106045201000130"
    "8006025101000000003080020102060c2a8648ce14020100000001013080060c2a8648ce140201000000020100000000"
    "000061803080020101a0806080a180060c2a8648ce14020100000003010000be802880060c2a8648ce14020100000001"
    "0102010281488000000040000000000000008000000020000000000000000001002c0001002880000000000009c40000"
    "09c4000003e8ffffffff600000000001000cf00100088c0000000000000000000000000000000000000000000000"
)
# Release request / response and abort: VSCaptureMP rlrq_msg, rlrq_resp_msg, assoc_abort_resp_msg.
RELEASE_REQUEST = bytes.fromhex("0918c11661803080020101a08062808001000000000000000000")
RELEASE_RESPONSE = bytes.fromhex("0a18c11661803080020101a08063808001000000000000000000")
ABORT = bytes.fromhex(
    "192e110103c129a080a0803080020101060251010000000061803080020101a080648080010100000000000000000000"
)


def _data_pdu(ro_type: int, body: bytes) -> bytes:
    return SPPDU + struct.pack(">HH", ro_type, len(body)) + body


def mds_create_result(invoke_id: int, event_time: int) -> bytes:
    """Answer to the MDS Create Event Report (also the keep-alive, resent every 6 s)."""
    arg = struct.pack(">HHHIHH", NOM_MOC_VMS_MDS, 0, 0, event_time, NOM_NOTI_MDS_CREAT, 0)
    return _data_pdu(RORS_APDU, struct.pack(">HHH", invoke_id, CMD_CONFIRMED_EVENT_REPORT, len(arg)) + arg)


def poll_request(invoke_id: int, poll_number: int, obj_code: int = NOM_MOC_VMO_METRIC_NU,
                 extended: bool = False, period_ticks: int | None = None) -> bytes:
    """NOM_ACT_POLL_MDIB_DATA (or _EXT) for numerics (obj_code 6) or MDS attributes (33)."""
    req = struct.pack(">HHHH", poll_number, NOM_PART_OBJ, obj_code, 0)
    action = NOM_ACT_POLL_MDIB_DATA
    if extended:
        action = NOM_ACT_POLL_MDIB_DATA_EXT
        if period_ticks is None:
            req += struct.pack(">HH", 0, 0)
        else:
            req += struct.pack(">HHHHI", 1, 8, NOM_ATTR_TIME_PD_POLL, 4, period_ticks)
    arg = struct.pack(">HHHIHH", NOM_MOC_VMS_MDS, 0, 0, 0, action, len(req)) + req
    return _data_pdu(ROIV_APDU, struct.pack(">HHH", invoke_id, CMD_CONFIRMED_ACTION, len(arg)) + arg)


# -- monitor -> gateway (emulator) ------------------------------------------------------
# Association accepted. NOT from a capture: the accept SPDU (0x0E) over the AARQ's own presentation
# and MDSE user-info bytes (the monitor accepting the proposed poll profile). The gateway looks only
# at the SPDU type, as VSCaptureMP does.
AARE = bytes([AC_SPDU]) + AARQ[1:]


def bcd_time(t: float) -> bytes:
    """AbsoluteTime: century, year, month, day, hour, minute, second, 1/100 s, all BCD."""
    g = __import__("time").gmtime(t)
    vals = (g.tm_year // 100, g.tm_year % 100, g.tm_mon, g.tm_mday, g.tm_hour, g.tm_min, g.tm_sec,
            int((t % 1) * 100))
    return bytes(((v // 10) << 4) | (v % 10) for v in vals)


def mds_create_event(invoke_id: int, rel_time: int, abs_time: float) -> bytes:
    attrs = [
        (NOM_ATTR_SYS_TYPE, struct.pack(">HH", NOM_PART_OBJ, 4429)),  # NOM_DEV_MON_PHYSIO_MULTI_PARAM_MDS
        (NOM_ATTR_TIME_ABS, bcd_time(abs_time)),
    ]
    alist = b"".join(struct.pack(">HH", a, len(v)) + v for a, v in attrs)
    info = struct.pack(">HHH", NOM_MOC_VMS_MDS, 0, 0) + struct.pack(">HH", len(attrs), len(alist)) + alist
    arg = struct.pack(">HHHIHH", NOM_MOC_VMS_MDS, 0, 0, rel_time, NOM_NOTI_MDS_CREAT, len(info)) + info
    return _data_pdu(ROIV_APDU, struct.pack(">HHH", invoke_id, CMD_CONFIRMED_EVENT_REPORT, len(arg)) + arg)


@dataclass(frozen=True, slots=True)
class NuObs:
    """One numeric observation as the monitor reports it (value as a raw 32-bit FLOAT)."""

    physio_id: int
    state: int
    unit: int
    raw: int


def observation(handle: int, values: list[NuObs], label: str = "", abs_time: float | None = None) -> bytes:
    """An ObservationPoll: one numeric object; several values make a compound (NIBP)."""
    attrs: list[tuple[int, bytes]] = []
    physio = values[0].physio_id if len(values) == 1 else NOM_PRESS_BLD_NONINV
    attrs.append((NOM_ATTR_ID_TYPE, struct.pack(">HH", NOM_PART_SCADA, physio)))
    if len(values) == 1:
        v = values[0]
        attrs.append((NOM_ATTR_NU_VAL_OBS, struct.pack(">HHHI", v.physio_id, v.state, v.unit, v.raw)))
    else:
        body = b"".join(struct.pack(">HHHI", v.physio_id, v.state, v.unit, v.raw) for v in values)
        attrs.append((NOM_ATTR_NU_CMPD_VAL_OBS, struct.pack(">HH", len(values), len(body)) + body))
    if label:
        s = label.encode("utf-16-be") + b"\x00\x00"
        attrs.append((NOM_ATTR_ID_LABEL_STRING, struct.pack(">H", len(s)) + s))
    if abs_time is not None:
        attrs.append((NOM_ATTR_TIME_STAMP_ABS, bcd_time(abs_time)))
    alist = b"".join(struct.pack(">HH", a, len(v)) + v for a, v in attrs)
    return struct.pack(">HHH", handle, len(attrs), len(alist)) + alist


def poll_reply(invoke_id: int, poll_number: int, rel_time: int, abs_time: float, observations: list[bytes],
               extended: bool = False, sequence_no: int = 0, linked: tuple[int, int] | None = None) -> bytes:
    """The monitor's reply to a poll: RORS (or ROLRS part ``linked=(state, count)``) with numerics."""
    obs = b"".join(observations)
    ctx = struct.pack(">HHH", 0, len(observations), len(obs)) + obs
    info = struct.pack(">HH", 1, len(ctx)) + ctx
    head = struct.pack(">H", poll_number)
    if extended:
        head += struct.pack(">H", sequence_no)
    reply = head + struct.pack(">I", rel_time) + bcd_time(abs_time) + struct.pack(
        ">HHH", NOM_PART_OBJ, NOM_MOC_VMO_METRIC_NU, 0) + info
    action = NOM_ACT_POLL_MDIB_DATA_EXT if extended else NOM_ACT_POLL_MDIB_DATA
    res = struct.pack(">HHHHH", NOM_MOC_VMS_MDS, 0, 0, action, len(reply)) + reply
    if linked is None:
        return _data_pdu(RORS_APDU, struct.pack(">HHH", invoke_id, CMD_CONFIRMED_ACTION, len(res)) + res)
    return _data_pdu(ROLRS_APDU, struct.pack(">BBHHH", linked[0], linked[1], invoke_id, CMD_CONFIRMED_ACTION,
                                             len(res)) + res)


# -- parsing ----------------------------------------------------------------------
_time_cache: dict[bytes, float | None] = {}


def parse_abs_time(b: bytes) -> float | None:
    """BCD AbsoluteTime -> epoch seconds (monitor clock read as UTC); None if unset/invalid."""
    t = _time_cache.get(b)
    if t is not None or b in _time_cache:
        return t
    try:
        v = [(x >> 4) * 10 + (x & 0x0F) for x in b]
        if any((x >> 4) > 9 or (x & 0x0F) > 9 for x in b):
            raise ValueError
        year = v[0] * 100 + v[1]
        if not (1 <= v[2] <= 12 and 1 <= v[3] <= 31 and v[4] < 24 and v[5] < 60 and v[6] < 61):
            raise ValueError
        t = calendar.timegm((year, v[2], v[3], v[4], v[5], v[6], 0, 0, 0)) + v[7] / 100.0
    except (ValueError, IndexError, OverflowError):
        t = None
    if len(_time_cache) > 256:
        _time_cache.clear()
    _time_cache[bytes(b)] = t
    return t


class PduError(ValueError):
    pass


_U16 = struct.Struct(">H")
_HH = struct.Struct(">HH")
_HHH = struct.Struct(">HHH")
_NUOBS = struct.Struct(">HHHI")


ObsTuple = tuple[int, int, int, int, float | None]  # physio_id, state, unit, raw FLOAT, observation time


def parse_poll_reply(ud: bytes, start: int, extended: bool) -> tuple[int, float | None, list[ObsTuple]]:
    """PollMdibDataReply(Ext) at ``start`` -> (poll_number, reply time, [(physio, state, unit, raw, time)])."""
    poll_number = _U16.unpack_from(ud, start)[0]
    p = start + (4 if extended else 2)
    reply_time = parse_abs_time(ud[p + 4 : p + 12])
    p += 12 + 6  # rel_time, abs_time, type, attr group
    _count, length = _HH.unpack_from(ud, p)
    p += 4
    end = p + length
    if end > len(ud):
        raise PduError("poll info list overruns the PDU")
    out: list[ObsTuple] = []
    while p < end:
        _ctx, _n, clen = _HHH.unpack_from(ud, p)
        p += 6
        cend = p + clen
        if cend > end:
            raise PduError("context poll overruns")
        while p < cend:
            _handle, _na, alen = _HHH.unpack_from(ud, p)
            p += 6
            aend = p + alen
            if aend > cend:
                raise PduError("attribute list overruns")
            obs_time = None
            found: list[tuple[int, int, int, int]] = []
            while p < aend:
                attr, vlen = _HH.unpack_from(ud, p)
                p += 4
                if p + vlen > aend:
                    raise PduError("attribute overruns")
                if attr == NOM_ATTR_NU_VAL_OBS:
                    found.append(_NUOBS.unpack_from(ud, p))
                elif attr == NOM_ATTR_NU_CMPD_VAL_OBS:
                    n, _l = _HH.unpack_from(ud, p)
                    if 4 + 10 * n > vlen:
                        raise PduError("compound value overruns")
                    found.extend(_NUOBS.unpack_from(ud, p + 4 + 10 * i) for i in range(n))
                elif attr == NOM_ATTR_TIME_STAMP_ABS and vlen == 8:
                    obs_time = parse_abs_time(ud[p : p + 8])
                p += vlen
            for f in found:
                out.append((f[0], f[1], f[2], f[3], obs_time))
    return poll_number, reply_time, out
