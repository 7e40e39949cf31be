"""Offline analysis: the streaming `LumbarPipeline` driven over a whole recording.

The recording is cut into chunks of `chunk_s` on its time axis and fed to the very same pipeline
object a live session uses, so offline and live angles agree (to float rounding; tests hold them
to 0.01°). Both sensors' data of a chunk go in together (`LumbarPipeline.update_many`): that
gives what feeding them in small alternating batches gives, as long as neither sensor was silent
for long (half the time the stages wait for a silent sensor, `AlignmentParams.max_wait_s` and
`RestBiasParams.max_wait_s`); a recording with a longer silence is fed chunk by chunk and sensor
by sensor in chunks of at most that half, so that the stages drop what a live session would drop.
Chunks only amortise per-call overhead: 60–120 s chunks keep the arrays small enough for the
CPU's caches and the per-call work small against the per-sample work (about 0.5× the throughput
of VQF alone, whose filter is ~60 % of the time). If calibration happened later than the
pipeline's pre-calibration buffer reaches, the recording is analysed a second time with the
calibration found (same orientation run, so the calibration's heading holds) to give angles from
the start.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from processing.calibration import Calibration, CalibrationError
from processing.pipeline import AngleBatch, CalibrationWindows, LumbarPipeline, PipelineParams
from processing.segmentation import Repetition
from sensors.samples import SampleBatch


@dataclass(frozen=True)
class OfflineAnalysis:
    angles: AngleBatch
    calibration: Calibration
    repetitions: list[Repetition] = field(default_factory=list)


def _slice(b: SampleBatch, i0: int, i1: int, gap: bool) -> SampleBatch:
    def s(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a[i0:i1]

    return SampleBatch(b.sensor, b.time_s[i0:i1], b.acc[i0:i1], b.gyr[i0:i1], s(b.mag),
                       s(b.device_time_s), s(b.counter), gap)


def _merge(parts: list[SampleBatch]) -> tuple[SampleBatch, np.ndarray]:
    """One batch of a sensor's batches, and the indices of samples with `gap_before`."""
    parts = [b for b in parts if len(b)]
    starts = np.cumsum([0] + [len(b) for b in parts[:-1]])
    gaps = np.array([i for i, b in zip(starts, parts) if b.gap_before], dtype=np.int64)
    if len(parts) == 1:
        return parts[0], gaps

    def cat(name: str) -> np.ndarray | None:
        arrs = [getattr(b, name) for b in parts]
        return None if any(a is None for a in arrs) else np.concatenate(arrs)

    merged = SampleBatch(parts[0].sensor, cat("time_s"), cat("acc"), cat("gyr"), cat("mag"),
                         cat("device_time_s"), cat("counter"))
    return merged, gaps


Recording = Mapping[str, SampleBatch | Sequence[SampleBatch]] | Iterable[SampleBatch]
_Merged = dict[str, tuple[SampleBatch, np.ndarray]]


def _merged(recording: Recording) -> _Merged:
    """Per sensor one batch of all its samples, and the indices of samples with `gap_before`."""
    if isinstance(recording, Mapping):
        groups = {role: [v] if isinstance(v, SampleBatch) else list(v)
                  for role, v in recording.items()}
    else:
        groups = {}
        for b in recording:
            groups.setdefault(b.sensor, []).append(b)
    return {role: _merge(parts) for role, parts in groups.items()
            if any(len(b) for b in parts)}


def _cut(merged: _Merged, chunk_s: float) -> list[list[SampleBatch]]:
    """The merged recording cut into time-ordered chunks of `chunk_s` on its time axis: per
    chunk the lower sensor's part, then the upper sensor's; also cut where a batch said
    `gap_before`, which is kept."""
    if not merged:
        return []
    t0 = min(float(b.time_s[0]) for b, _ in merged.values())
    t1 = max(float(b.time_s[-1]) for b, _ in merged.values())
    edges = t0 + chunk_s * np.arange(int(np.floor((t1 - t0) / chunk_s)) + 2)
    out = []
    cuts = {}
    for role, (b, gaps) in merged.items():
        grid = np.searchsorted(b.time_s, edges, side="left")
        cuts[role] = (grid, gaps)
    for k in range(edges.size - 1):
        unit = []
        for role in ("lower", "upper"):
            if role not in merged:
                continue
            b = merged[role][0]
            grid, gaps = cuts[role]
            i0, i1 = int(grid[k]), int(grid[k + 1])
            inner = gaps[(gaps > i0) & (gaps < i1)]
            bounds = [i0, *inner.tolist(), i1]
            for j0, j1 in zip(bounds[:-1], bounds[1:]):
                if j1 > j0:
                    unit.append(_slice(b, j0, j1, bool(np.any(gaps == j0))))
        if unit:
            out.append(unit)
    return out


def chunked(recording: Recording, chunk_s: float = 10.0) -> list[SampleBatch]:
    """A recording (per sensor one batch or a list of batches, or an iterable of batches of
    either sensor, each sensor's in time order) cut into time-ordered chunks of `chunk_s`, both
    sensors chunk by chunk; also cut where a batch said `gap_before`, which is kept."""
    return [b for unit in _cut(_merged(recording), chunk_s) for b in unit]


def _longest_silence_s(merged: _Merged) -> float:
    """The longest time one sensor sent nothing while the recording went on: its longest step,
    and how much later it started or earlier it stopped than the other."""
    if set(merged) != {"lower", "upper"}:
        return np.inf
    t = {role: b.time_s for role, (b, _) in merged.items()}
    longest = max(float(np.max(np.diff(x), initial=0.0)) for x in t.values())
    return max(longest, abs(float(t["lower"][0] - t["upper"][0])),
               abs(float(t["lower"][-1] - t["upper"][-1])))


def analyze_detailed(
    batches: Recording,
    params: PipelineParams = PipelineParams(),
    calibration: Calibration | CalibrationWindows | None = None,
    *,
    chunk_s: float = 120.0,
    targets: Mapping[str, float] | None = None,
) -> OfflineAnalysis:
    """Angles of a whole recording, the calibration used and the repetitions (with the
    repositioning error against `targets`, degrees per direction); raises `CalibrationError` when
    no usable calibration movement was found (or the given windows are unusable)."""
    merged = _merged(batches)
    wait_s = min(params.alignment.max_wait_s, params.rest.max_wait_s)
    if _longest_silence_s(merged) < wait_s / 2:
        # neither sensor silent for long: both sensors' chunks go in together, as one
        units = _cut(merged, chunk_s)
    else:
        # chunk by chunk and sensor by sensor, so that neither sensor runs ahead of the other by
        # more than the stages wait for it: they then drop what a live session would drop
        units = [[b] for b in chunked(batches, min(chunk_s, wait_s / 2))]
    pipe = LumbarPipeline(params, calibration)
    for direction, deg in (targets or {}).items():
        if pipe.segmenter is not None:
            pipe.segmenter.set_target(direction, deg)
    parts = [pipe.update_many(unit) for unit in units]
    if pipe.calibration is None:
        if pipe.last_calibration_failure is not None:
            raise CalibrationError(pipe.last_calibration_failure)
        raise CalibrationError(
            f"No calibration movement found (stopped at '{pipe.calibration_status.phase}'). "
            "A recording must start with 5 s of still, upright standing and a slow forward bend.")
    angles = AngleBatch.concat(parts)
    stream = [b for unit in units for b in unit]
    lower_t0 = min((float(b.time_s[0]) for b in stream if b.sensor == "lower" and len(b)),
                   default=None)
    if (len(angles) and lower_t0 is not None and not isinstance(calibration, Calibration)
            and angles.time_s[0] > lower_t0 + 1.0):
        # calibrated late: the buffer had let the start go; again with the calibration found
        return analyze_detailed(stream, params, pipe.calibration, chunk_s=chunk_s,
                                targets=targets)
    return OfflineAnalysis(angles, pipe.calibration, pipe.finish())


def analyze(
    batches: Recording,
    params: PipelineParams = PipelineParams(),
    calibration: Calibration | CalibrationWindows | None = None,
    *,
    chunk_s: float = 120.0,
) -> AngleBatch:
    """Lumbar angles of a whole recording (see `analyze_detailed`)."""
    return analyze_detailed(batches, params, calibration, chunk_s=chunk_s).angles
