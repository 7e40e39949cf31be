"""Simulated Movesense running the GSP firmware module (`gatt_sensordata_app`).

Protocol: sensors/devices/movesense.py and ble-imu-devices.md §2. Behaviour modelled after
`GATTSensorDataClient.cpp` (v1 sample):
- HELLO → `01 <ref> "Hello"`; SUBSCRIBE to `/Meas/IMU6|IMU9/<rate>`; a successful subscribe
  sends no result; errors are `01 <ref> <status big-endian>`: 507 table full (firmware), 501 for
  an unsupported rate and 404 for an unknown resource (the Whiteboard results the firmware would
  forward, imu.yaml; the v1 sample drops them, newer firmware reports them: MED), 400 for
  reference 0 (the sample stores it as a free slot; reporting it is this simulator's choice).
  UNSUBSCRIBE sends nothing. Unknown command bytes are ignored (the firmware's switch has no
  default).
- Data: N samples per message, N = rate/13 (8 at 104 Hz, the one documented value; others are
  an inference), capped so a message fits DATA + PART2 + PART3 at `max_value_len` bytes per
  notification (≤ 155 on Movesense). Timestamp = device ms of the first sample, uint32.
- A disconnect drops all subscriptions (the firmware unsubscribes on DISCONNECTED); `reboot(t)`
  restarts the ms clock from 0.
"""

from __future__ import annotations

import numpy as np

from sensors.devices import movesense as ms
from sensors.devices.base import Advertisement
from sensors.devices.codec import DEG
from sensors.devices.peripherals.base import (
    ATT_INVALID_ATTRIBUTE_LENGTH,
    CharSpec,
    DeviceClock,
    GattError,
    Notification,
    PeripheralBase,
    ServiceSpec,
)
from sensors.samples import SampleBatch

MAX_PARTS = 3  # DATA, DATA_PART2, DATA_PART3


def samples_per_message(rate_hz: float, arrays: int, max_value_len: int = 155) -> int:
    """N per message: rate/13 (8 at 104 Hz), capped to what three notifications can carry."""
    fit = (MAX_PARTS * (max_value_len - 2) - 4) // (12 * arrays)
    if fit < 1:
        raise ValueError(f"max_value_len {max_value_len} cannot carry one IMU sample")
    return max(1, min(int(round(rate_hz / 13.0)), fit))


def encode_message(ref: int, time_ms: int, acc: np.ndarray, gyr: np.ndarray, mag: np.ndarray | None,
                   max_value_len: int = 155) -> list[bytes]:
    """One IMU message as DATA (+PART2, +PART3) notifications (§2.3 layout, gyro in °/s)."""
    arrays = [acc, gyr / DEG] + ([mag] if mag is not None else [])
    payload = (time_ms % (1 << 32)).to_bytes(4, "little") + b"".join(
        np.ascontiguousarray(a, dtype="<f4").tobytes() for a in arrays
    )
    step = max_value_len - 2
    chunks = [payload[i:i + step] for i in range(0, len(payload), step)]
    return [bytes((ms.RESP_DATA + k, ref)) + chunk for k, chunk in enumerate(chunks)]


class MovesensePeripheral(PeripheralBase):
    family = "movesense"

    def __init__(
        self,
        name: str = "Movesense 174630000192",
        address: str = "0C:8C:DC:11:22:33",
        generation: str = "v1",
        clock_offset_s: float = 1234.567,
        drift_ppm: float = 0.0,
        max_value_len: int = 155,
        max_subscriptions: int = 4,
        require_cccd: bool = False,
    ) -> None:
        super().__init__(name=name, address=address, require_cccd=require_cccd)
        self.service_uuid, self.command_uuid, self.data_uuid = ms.GENERATIONS[generation]
        self.clock = DeviceClock(clock_offset_s, drift_ppm)
        self.max_value_len = int(max_value_len)
        self.max_subscriptions = int(max_subscriptions)
        self.subscriptions: dict[int, tuple[str, float]] = {}  # ref -> (resource, rate)
        self._buffers: dict[int, list[np.ndarray]] = {}

    @property
    def streaming(self) -> bool:
        return bool(self.subscriptions)

    @property
    def rate_hz(self) -> float:
        return max((rate for _, rate in self.subscriptions.values()), default=0.0)

    def advertisement(self) -> Advertisement:
        return Advertisement(name=self.name, address=self.address)

    def gatt_table(self) -> tuple[ServiceSpec, ...]:
        return (
            ServiceSpec(self.service_uuid, (
                CharSpec(self.command_uuid, ("write",)),
                CharSpec(self.data_uuid, ("notify",)),
            )),
        )

    def reboot(self, t: float) -> None:
        """Power cycle at true time t: the ms clock restarts from 0 and subscriptions are gone."""
        self.clock.reboot(t)
        self.on_disconnect()

    def on_disconnect(self) -> None:
        super().on_disconnect()
        self.subscriptions.clear()
        self._buffers.clear()

    def _result(self, ref: int, status: int) -> list[Notification]:
        return self._out([(self.data_uuid, bytes((ms.RESP_COMMAND_RESULT, ref)) + status.to_bytes(2, "big"))])

    def on_write(self, char_uuid: str, data: bytes, response: bool = True) -> list[Notification]:
        self._check(char_uuid, "write")  # only the command characteristic is writable
        data = bytes(data)
        if len(data) < 2:
            raise GattError(ATT_INVALID_ATTRIBUTE_LENGTH, "GSP commands are at least 2 bytes")
        cmd, ref = data[0], data[1]
        if cmd == ms.CMD_HELLO:
            return self._out([(self.data_uuid, bytes((ms.RESP_COMMAND_RESULT, ref)) + b"Hello")])
        if cmd == ms.CMD_UNSUBSCRIBE:
            self.subscriptions.pop(ref, None)
            self._buffers.pop(ref, None)
            return []
        if cmd != ms.CMD_SUBSCRIBE:
            return []
        if ref == 0:
            return self._result(ref, 400)
        if len(self.subscriptions) >= self.max_subscriptions and ref not in self.subscriptions:
            return self._result(ref, 507)
        parts = data[2:].decode("utf-8", errors="replace").strip("/").split("/")
        if len(parts) != 3 or parts[0].lower() != "meas" or parts[1].upper() not in ("IMU6", "IMU9"):
            return self._result(ref, 404)
        try:
            rate = float(parts[2])
        except ValueError:
            return self._result(ref, 404)
        if rate not in ms.IMU_RATES_HZ:
            return self._result(ref, 501)
        self.subscriptions[ref] = (parts[1].upper(), rate)
        self._buffers[ref] = []
        return []

    def notifications_for(self, batch: SampleBatch) -> list[Notification]:
        if len(batch) == 0 or not self.subscriptions:
            return []
        mag = batch.mag if batch.mag is not None else np.zeros_like(batch.acc)
        rows = np.column_stack((batch.time_s, batch.acc, batch.gyr, mag))
        out: list[Notification] = []
        for ref, (resource, rate) in self.subscriptions.items():
            arrays = 3 if resource == "IMU9" else 2
            n = samples_per_message(rate, arrays, self.max_value_len)
            pending = np.vstack(self._buffers[ref] + [rows])
            whole = len(pending) - len(pending) % n
            for i in range(0, whole, n):
                chunk = pending[i:i + n]
                time_ms = int(np.floor(self.clock.at(chunk[0, 0]) * 1000.0))
                mag_part = chunk[:, 7:10] if arrays == 3 else None
                for part in encode_message(ref, time_ms, chunk[:, 1:4], chunk[:, 4:7], mag_part, self.max_value_len):
                    out.append((self.data_uuid, part))
            self._buffers[ref] = [pending[whole:]]
        return self._out(out)
