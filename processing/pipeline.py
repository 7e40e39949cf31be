"""The streaming pipeline: sample batches of both sensors in, lumbar angles out.

    SampleBatch ─► PairedOrientation (VQF per sensor, joint rest bias) ─► Aligner (upper at
        lower times) ─► [before calibration: bounded buffer + CalibrationDetector ─► calibrate()]
        ─► calibration transforms ─► HeadingDriftCorrector (relative heading, neutral stance)
        ─► lumbar_kinematics ─► AngleBatch ─► Segmenter (repetitions, smoothness)

Every stage keeps explicit state and gives the same output however the stream is cut into batches
(see each module), so `processing.offline.analyze` drives this very object over whole recordings.
Angles come at the lower sensor's sample times, only once calibrated. Until then the aligned frames
of the last `pre_calibration_buffer_s` are kept, and when calibration succeeds their angles are
emitted too, so that a recording gets angles from its start. Memory stays bounded: the buffer holds
at most that much, and after calibration nothing accumulates (repetitions wait in a bounded list
for `pop_repetitions`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from processing.alignment import AlignedFrames, Aligner, AlignmentParams
from processing.angles import AngleBatch
from processing.calibration import (
    Calibration,
    CalibrationError,
    CalibrationParams,
    calibrate,
    rezero_neutral,
)
from processing.calibration_detector import (
    CalibrationDetector,
    CalibrationStatus,
    Failed,
    Found,
)
from processing.heading import HeadingDriftCorrector, HeadingParams
from processing.kinematics import lumbar_kinematics
from processing.orientation import OrientationParams
from processing.rest_bias import RestBiasParams
from processing.segmentation import Repetition, SegmentationParams, Segmenter
from processing.sensor_pair import PairedOrientation
from sensors.samples import SampleBatch


@dataclass(frozen=True)
class PipelineParams:
    orientation: OrientationParams = field(default_factory=OrientationParams)
    alignment: AlignmentParams = field(default_factory=AlignmentParams)
    calibration: CalibrationParams = field(default_factory=CalibrationParams)
    rest: RestBiasParams = field(default_factory=RestBiasParams)
    heading: HeadingParams = field(default_factory=HeadingParams)
    segmentation: SegmentationParams | None = field(default_factory=SegmentationParams)
    """Repetition detection on the angles (None: off)."""
    max_pending_repetitions: int = 1000
    """Repetitions kept for `pop_repetitions` (the oldest go first)."""
    pre_calibration_buffer_s: float = 60.0
    """Aligned frames kept before calibration (their angles are emitted once calibrated); never
    less than the calibration windows can span (`CalibrationParams.neutral_max_s` +
    `bend_pre_s` + `bend_timeout_s` + 1 s)."""

    @property
    def buffer_horizon_s(self) -> float:
        c = self.calibration
        return max(self.pre_calibration_buffer_s,
                   c.neutral_max_s + c.bend_pre_s + c.bend_timeout_s + 1.0)


@dataclass(frozen=True)
class CalibrationWindows:
    """Calibrate from these windows (s, on the samples' time base) instead of detecting them."""

    neutral_s: tuple[float, float]
    bend_s: tuple[float, float]


_DEG = 180.0 / np.pi


class LumbarPipeline:
    """Streaming lumbar angles from the two sensors (see module docstring).

    `calibration`: None (detect the calibration movement in the stream), a `Calibration` (with
    heading: use as is, e.g. the same recording re-analysed; without heading: re-measure neutral
    in the stream) or `CalibrationWindows` (calibrate from these windows once they have passed;
    a failure then raises `CalibrationError` from `update`).
    """

    def __init__(self, params: PipelineParams = PipelineParams(),
                 calibration: Calibration | CalibrationWindows | None = None) -> None:
        self.params = params
        self._orientation = PairedOrientation(params.orientation, params.rest)
        self._aligner = Aligner(params.alignment)
        self._segmenter = (None if params.segmentation is None
                           else Segmenter(params.segmentation))
        self._reps: list[Repetition] = []
        self._reset(calibration)

    def _reset(self, calibration: Calibration | CalibrationWindows | None) -> None:
        self._windows = calibration if isinstance(calibration, CalibrationWindows) else None
        self._calibration = calibration if isinstance(calibration, Calibration) else None
        self._transforms = None
        self._heading: HeadingDriftCorrector | None = None
        self._buffer: list[AlignedFrames] = []
        self._failure: str | None = None
        self._detector = None
        if self._calibration is not None and self._calibration.has_heading:
            self._transforms = self._calibration.segment_transforms()
            self._heading = self._heading_corrector(self._calibration)
        elif self._windows is None:
            mode = "full" if self._calibration is None else "neutral"
            self._detector = CalibrationDetector(self.params.calibration, mode)
        self._seen = False

    # -- public state ----------------------------------------------------------------------
    @property
    def calibration(self) -> Calibration | None:
        """The calibration in use (None until calibrated)."""
        return self._calibration if self._transforms is not None else None

    @property
    def comfortable_flexion_deg(self) -> float | None:
        """Peak lumbar flexion during the calibration bend."""
        c = self.calibration
        return None if c is None else c.comfortable_flexion_deg

    @property
    def calibration_status(self) -> CalibrationStatus:
        if self._transforms is not None:
            return CalibrationStatus("calibrated", "Calibrated.", 1.0)
        if self._detector is not None:
            return self._detector.status()
        if self._failure is not None:
            return CalibrationStatus("failed", self._failure, 0.0)
        if not self._seen:
            return CalibrationStatus("waiting_for_sensors", "Waiting for both sensors.", 0.0)
        return CalibrationStatus("hold_still", "Calibrating from the given windows.", 0.5)

    @property
    def last_calibration_failure(self) -> str | None:
        """Why the latest calibration attempt failed (None if none failed)."""
        if self._detector is not None and self._detector.last_failure is not None:
            return self._detector.last_failure
        return self._failure

    @property
    def segmenter(self) -> Segmenter | None:
        """The repetition detector (set targets on it), None when segmentation is off."""
        return self._segmenter

    def pop_repetitions(self) -> list[Repetition]:
        """Repetitions completed since the last call."""
        out, self._reps = self._reps, []
        return out

    def finish(self) -> list[Repetition]:
        """End of the recording: repetitions still open are closed; all not yet popped."""
        if self._segmenter is not None:
            self._reps.extend(self._segmenter.finish())
        return self.pop_repetitions()

    def reset_calibration(self) -> None:
        """Forget the calibration and detect a new one in the stream (orientation goes on)."""
        self._reset(None)

    # -- processing ------------------------------------------------------------------------
    def update(self, batch: SampleBatch) -> AngleBatch:
        """Process one batch of either sensor; angles of the frames that became ready."""
        return self.update_many((batch,))

    def update_many(self, batches: Sequence[SampleBatch]) -> AngleBatch:
        """Process several batches (of either sensor, each sensor's in time order) as one: the
        same angles as `update` one by one gives in turn, as long as neither sensor was silent
        for longer than the stages wait for it (`RestBiasParams.max_wait_s`,
        `AlignmentParams.max_wait_s`); an offline analysis feeds both sensors' data of a long
        stretch of time at once, which saves the per-call work of every stage."""
        for role, ob in self._orientation.update_many(batches):
            self._aligner.push(role, ob)
        frames = self._aligner.pop()
        if len(frames):
            self._seen = True
        angles = (self._angles(frames) if self._transforms is not None
                  else self._calibrating(frames))
        if self._segmenter is not None and len(angles):
            self._reps.extend(self._segmenter.update(angles))
            if len(self._reps) > self.params.max_pending_repetitions:
                del self._reps[:-self.params.max_pending_repetitions]
        return angles

    def _angles(self, frames: AlignedFrames) -> AngleBatch:
        if not len(frames):
            return AngleBatch.empty()
        ml, mu, cl, cu = self._transforms
        # (N, 4) and (N, 3) with each component contiguous: the stages below work per component
        q_l, q_u = (ml @ frames.q_lower.T).T, (mu @ frames.q_upper.T).T
        w_l, w_u = (cl.T @ frames.gyr_lower.T).T, (cu.T @ frames.gyr_upper.T).T
        assert self._heading is not None
        q_u = self._heading.update(frames.time_s, q_l, q_u, w_l, w_u)
        kin = lumbar_kinematics(q_l, q_u, w_l, w_u)
        return AngleBatch(
            time_s=frames.time_s,
            flexion_deg=kin.flexion * _DEG,
            lateral_bend_deg=kin.lateral_bend * _DEG,
            axial_rotation_deg=kin.axial_rotation * _DEG,
            pelvic_tilt_deg=kin.pelvic_tilt * _DEG,
            upper_inclination_deg=kin.upper_inclination * _DEG,
            flexion_velocity_deg_s=kin.flexion_velocity * _DEG,
            lateral_bend_velocity_deg_s=kin.lateral_bend_velocity * _DEG,
            axial_rotation_velocity_deg_s=kin.axial_rotation_velocity * _DEG,
            lumbar_angular_speed_deg_s=kin.lumbar_angular_speed * _DEG,
            gap_before=frames.gap_before,
            pelvic_tilt_velocity_deg_s=kin.pelvic_tilt_velocity * _DEG,
            upper_inclination_velocity_deg_s=kin.upper_inclination_velocity * _DEG,
        )

    def _calibrating(self, frames: AlignedFrames) -> AngleBatch:
        if len(frames):
            self._buffer.append(frames)
        done_at: float | None = None
        if self._windows is not None:
            w = self._windows
            if len(frames) and frames.time_s[-1] >= w.bend_s[1]:
                buf = AlignedFrames.concat(self._buffer)
                self._buffer = [buf]
                try:
                    cal = calibrate(buf, w.neutral_s, w.bend_s, self.params.calibration)
                except CalibrationError as e:
                    self._failure = str(e)
                    raise
                done_at = self._use(cal, w.bend_s[1])
        elif self._detector is not None:
            result = self._detector.update(frames)
            while result is not None:
                buf = AlignedFrames.concat(self._buffer)
                self._buffer = [buf]
                if isinstance(result, Found):
                    try:
                        if result.bend_s is None:
                            assert self._calibration is not None
                            cal = rezero_neutral(self._calibration, buf, result.neutral_s,
                                                 self.params.calibration)
                        else:
                            cal = calibrate(buf, result.neutral_s, result.bend_s,
                                            self.params.calibration)
                    except CalibrationError as e:
                        self._detector.fail(str(e))
                    else:
                        done_at = self._use(cal, (result.bend_s or result.neutral_s)[1])
                        break
                elif isinstance(result, Failed):
                    pass  # the detector has started over by itself
                result = self._detector.update(AlignedFrames.empty())
        if done_at is not None:
            buf = AlignedFrames.concat(self._buffer)
            self._buffer = []
            keep = int(np.searchsorted(buf.time_s, self._keep_from(done_at), "left"))
            return self._angles(buf.take(slice(keep, None)))
        self._trim()
        return AngleBatch.empty()

    def _use(self, cal: Calibration, at_s: float) -> float:
        self._calibration = cal
        self._transforms = cal.segment_transforms()
        self._heading = self._heading_corrector(cal)
        self._detector = None
        self._failure = None
        return at_s

    def _heading_corrector(self, cal: Calibration) -> HeadingDriftCorrector:
        start = -np.inf if cal.neutral_s is None else cal.neutral_s[0]
        return HeadingDriftCorrector(self.params.heading, start)

    def _keep_from(self, newest_s: float) -> float:
        """Oldest time still needed: the horizon, or the start of given windows."""
        limit = newest_s - self.params.buffer_horizon_s
        if self._windows is not None:
            limit = min(limit, self._windows.neutral_s[0], self._windows.bend_s[0])
        return limit

    def _trim(self) -> None:
        if not self._buffer:
            return
        limit = self._keep_from(float(self._buffer[-1].time_s[-1]))
        while self._buffer and self._buffer[0].time_s[-1] < limit:
            self._buffer.pop(0)
        if self._buffer and self._buffer[0].time_s[0] < limit:
            first = self._buffer[0]
            self._buffer[0] = first.take(slice(int(np.searchsorted(first.time_s, limit)), None))
