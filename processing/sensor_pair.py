"""Orientation of the two sensors together: one filter each, and the joint rest bias between them.

    SampleBatch (either sensor) ─► JointRestDetector (block features, decisions)
                               └─► held until the blocks before it are decided
                                   ─► OrientationFilter of its sensor, with the rest events
                                      applied at their times ─► OrientationBatch

A sample is released to its filter once the rest decision for the block before it is known, that
is once both sensors have sent a sample past that block. In a live stream, where the two sensors'
batches alternate every few tens of milliseconds, this holds nothing back for longer than the
other sensor's next batch; a sensor running ahead by more than `RestBiasParams.max_wait_s` (the
other silent) does not wait longer. Because events apply at fixed times on the samples' time base,
any cutting of the streams into batches gives the same orientations.

With `RestBiasParams.enabled` False the filters run independently, each with VQF's own rest
detection, as `OrientationFilter` alone would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from processing.orientation import OrientationBatch, OrientationFilter, OrientationParams
from processing.rest_bias import JointRestDetector, RestBiasParams
from sensors.samples import SENSOR_ROLES, SampleBatch


def slice_batch(b: SampleBatch, i0: int, i1: int, gap_before: bool) -> SampleBatch:
    """Samples i0 ≤ i < i1 of a batch as a batch of its own."""

    def s(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a[i0:i1]

    return SampleBatch(b.sensor, b.time_s[i0:i1], b.acc[i0:i1], b.gyr[i0:i1], s(b.mag),
                       s(b.device_time_s), s(b.counter), gap_before)


class PairedOrientation:
    """Streaming orientation of `upper` and `lower` with joint rest bias (module docstring)."""

    def __init__(self, params: OrientationParams = OrientationParams(),
                 rest: RestBiasParams = RestBiasParams()) -> None:
        self.rest_params = rest
        if rest.enabled:
            params = replace(params, vqf_options={"biasClip": rest.vqf_bias_clip_deg_s,
                                                  **params.vqf_options,
                                                  "restBiasEstEnabled": False})
        self.filters = {role: OrientationFilter(params) for role in SENSOR_ROLES}
        self._detector = JointRestDetector(rest) if rest.enabled else None
        self._held: dict[str, list[SampleBatch]] = {role: [] for role in SENSOR_ROLES}

    @property
    def rest_events(self) -> int:
        """How many joint rests have updated the bias estimates so far."""
        return 0 if self._detector is None else self._detector.events

    def update(self, batch: SampleBatch) -> list[tuple[str, OrientationBatch]]:
        """Feed one batch; the orientation of every sample released by it, per sensor in order."""
        return self.update_many((batch,))

    def update_many(self, batches: Sequence[SampleBatch]) -> list[tuple[str, OrientationBatch]]:
        """Feed several batches (of either sensor, each sensor's in time order) at once; the
        orientation of every sample released by them, per sensor in order. The same as feeding
        them one by one, unless a sensor was silent for longer than `RestBiasParams.max_wait_s`
        (then the rest decisions that the other sensor's lead forces come later)."""
        if self._detector is None:
            return [(b.sensor, self.filters[b.sensor].update(b)) for b in batches]
        for batch in batches:
            if len(batch):
                self._detector.add(batch.sensor, batch.time_s, batch.gyr, batch.acc)
                self._held[batch.sensor].append(batch)
        rest = self.rest_params
        sigma = float(np.radians(rest.first_sigma_deg_s))
        for ev in self._detector.decide():
            for r, f in self.filters.items():
                f.schedule_rest(ev.time_s, ev.gyr_mean[r], ev.up[r], ev.first,
                                rest.vertical_gain, None if ev.bias is None else ev.bias[r],
                                sigma)
        limit = self._detector.decided_until_s
        out = []
        for r in SENSOR_ROLES:
            ob = self._release(r, np.inf if limit is None else limit)
            if len(ob):
                out.append((r, ob))
        return out

    def _release(self, role: str, limit: float) -> OrientationBatch:
        """Run the filter of `role` over its held samples before `limit`."""
        filt = self.filters[role]
        parts: list[OrientationBatch] = []
        held = self._held[role]
        while held and held[0].time_s[0] < limit:
            b = held[0]
            if b.time_s[-1] < limit:
                parts.append(filt.update(b))
                held.pop(0)
            else:
                n = int(np.searchsorted(b.time_s, limit, side="left"))
                parts.append(filt.update(slice_batch(b, 0, n, b.gap_before)))
                held[0] = slice_batch(b, n, len(b), False)
        parts = [p for p in parts if len(p)]
        if not parts:
            return OrientationBatch.empty()
        if len(parts) == 1:
            return parts[0]
        return OrientationBatch(*(np.concatenate(x) for x in zip(*(
            (p.time_s, p.quat, p.gyr, p.acc, p.gap_before) for p in parts))))
