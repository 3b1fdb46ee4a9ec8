"""Device configuration: one ``[[devices]]`` table per device in the gateway TOML.

The ``driver`` key selects the model (a discriminated union), so
``pulsegate check-config`` rejects an unknown driver naming the ones it knows,
and rejects serial settings the device never uses (a Masimo Rad-8 talks 9600
8N1 only: any other setting reads garbage)::

    [[devices]]
    driver = "masimo"          # philips_mib | masimo | nonin_oem3 | hl7_mllp | wearable_mqtt
    id = "rad8-bed3"
    bed = "3"
    port = "/dev/serial/by-id/usb-FTDI_FT232R-if00-port0"
    # baudrate/bytesize/parity/stopbits default to what the device uses
    silence_timeout_s = 5.0

Serial defaults come from ../shared/REFERENCES.md: IntelliVue MIB/RS232 115200 8N1;
Masimo ASCII 1 9600 8N1; Nonin OEM III 9600 8N1 (9th bit mark, read as 8N1).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, TypeAdapter, model_validator

from runtime.configbase import Section

DRIVERS = ("philips_mib", "masimo", "nonin_oem3", "hl7_mllp", "wearable_mqtt")
SERIAL_DRIVERS = ("philips_mib", "masimo", "nonin_oem3")

DeviceId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Bed = Annotated[str, Field(min_length=1, max_length=32)]
Seconds = Annotated[float, Field(gt=0, le=3600)]


class _DeviceBase(Section):
    id: DeviceId
    bed: Bed = "unassigned"
    silence_timeout_s: Seconds = 10.0
    reconnect_initial_s: Seconds = 0.5
    reconnect_max_s: Seconds = 30.0

    @model_validator(mode="after")
    def _backoff(self) -> _DeviceBase:
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError("reconnect_max_s must be >= reconnect_initial_s")
        return self


class _SerialDevice(_DeviceBase):
    """A device on a serial port. Settings other than what the device sends are rejected."""

    port: Annotated[str, Field(min_length=1)]
    baudrate: int = 9600
    bytesize: Literal[5, 6, 7, 8] = 8
    parity: Literal["N", "E", "O", "M", "S"] = "N"
    stopbits: float = 1
    # (baudrates, bytesize, parity, stopbits) the device really uses.
    DEVICE_SERIAL: ClassVar[tuple[frozenset[int], int, str, float]] = (frozenset({9600}), 8, "N", 1)
    DEVICE_NAME: ClassVar[str] = ""

    @model_validator(mode="after")
    def _serial_settings(self) -> _SerialDevice:
        if self.stopbits not in (1, 1.5, 2):
            raise ValueError(f"stopbits must be 1, 1.5 or 2, not {self.stopbits:g}")
        if not 50 <= self.baudrate <= 4_000_000:
            raise ValueError(f"baudrate {self.baudrate} is not a serial baud rate")
        bauds, size, parity, stop = self.DEVICE_SERIAL
        want = f"{'/'.join(str(b) for b in sorted(bauds))} baud {size}{parity}{stop:g}"
        got = f"{self.baudrate} baud {self.bytesize}{self.parity}{self.stopbits:g}"
        if self.baudrate not in bauds or self.bytesize != size or self.parity != parity or self.stopbits != stop:
            raise ValueError(f"{self.DEVICE_NAME} talks {want} only; {got} is impossible for this device")
        return self


class PhilipsMibConfig(_SerialDevice):
    driver: Literal["philips_mib"]
    baudrate: int = 115200
    poll_interval_s: Annotated[float, Field(ge=0.25, le=60)] = 1.0
    extended_poll: bool = False
    DEVICE_SERIAL = (frozenset({115200}), 8, "N", 1)
    DEVICE_NAME = "Philips IntelliVue MIB/RS232"


class MasimoConfig(_SerialDevice):
    driver: Literal["masimo"]
    silence_timeout_s: Seconds = 5.0
    DEVICE_SERIAL = (frozenset({9600}), 8, "N", 1)
    DEVICE_NAME = "Masimo Rad-8/Radical-7 ASCII 1"


class NoninConfig(_SerialDevice):
    driver: Literal["nonin_oem3"]
    silence_timeout_s: Seconds = 3.0
    DEVICE_SERIAL = (frozenset({9600}), 8, "N", 1)
    DEVICE_NAME = "Nonin OEM III"


class Hl7MllpConfig(_DeviceBase):
    """An MLLP listener central stations / Mindray-style monitors send ORU^R01 to.

    ``bed_map`` maps the PV1-3 bed (or the whole PV1-3 location) to a gateway bed;
    messages for unmapped locations go to ``bed``.
    """

    driver: Literal["hl7_mllp"]
    host: str = "0.0.0.0"
    port: Annotated[int, Field(ge=0, le=65535)] = 2575  # 0: any free port (tests, demo)
    bed_map: dict[str, Bed] = Field(default_factory=dict)
    silence_timeout_s: Seconds = 60.0
    max_message_bytes: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = 1024 * 1024


class WearableMqttConfig(_DeviceBase):
    """BLE wearables relayed by a BLE-to-MQTT bridge on the gateway's local broker.

    Topics (see docs/devices.md): ``{topic_prefix}/{device}/{uuid}`` carries the raw
    characteristic value bytes; ``{topic_prefix}/{device}/{uuid}/json`` a JSON form
    ``{"hex": "0e4b8000"}``. ``devices`` maps a BLE device id (MAC) to a bed; unknown
    devices are counted and ignored.
    """

    driver: Literal["wearable_mqtt"]
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    topic_prefix: Annotated[str, Field(min_length=1, pattern=r"^[^#+]+$")] = "pulsegate/ble"
    devices: dict[str, Bed] = Field(default_factory=dict)
    silence_timeout_s: Seconds = 30.0
    username: str | None = None  # the local broker allows no anonymous client
    password_file: str | None = None  # an absolute path or credential:NAME


DeviceConfig = Annotated[
    PhilipsMibConfig | MasimoConfig | NoninConfig | Hl7MllpConfig | WearableMqttConfig,
    Field(discriminator="driver"),
]
SerialDeviceConfig = PhilipsMibConfig | MasimoConfig | NoninConfig

_ADAPTER: TypeAdapter[DeviceConfig] = TypeAdapter(DeviceConfig)


def parse_device(data: dict[str, Any]) -> DeviceConfig:
    """Validate one ``[[devices]]`` table (raises pydantic.ValidationError)."""
    return _ADAPTER.validate_python(data)
