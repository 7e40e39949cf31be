"""Finding the calibration movement in the stream: quiet neutral standing, then a forward bend.

Works on aligned frames (both sensors at the lower sensor's times) cut into blocks of
`CalibrationParams.block_s` on a fixed grid of the time axis. A block is evaluated only once a
frame after it has arrived, from all of its frames at once, so the result does not depend on how
the stream was cut into batches. Per block and sensor: the largest bias-free gyroscope norm, the
largest deviation of the accelerometer norm from g, and the mean up direction (sensor frame)
from the accelerometer (right from the first sample, unlike the filter's converging inclination).

States (the patient-facing phase in brackets):
- HOLD ("hold_still"): waiting for `min_quiet_s` of quiet blocks on both sensors: gyroscope and
  accelerometer quiet and each sensor's up direction within `quiet_tilt_deg` of where the quiet
  period began.
- READY ("bend_forward"): quiet long enough; the quiet period goes on until the first non-quiet
  block, which starts the bend. Neutral is the last `neutral_max_s` of the quiet period, minus
  `neutral_margin_s` before the movement.
- MOVING ("bend_forward"): moving; a bend once the upper sensor's inclination has changed by
  `bend_min_deg`. Quiet again near neutral before that, or `bend_timeout_s`: back to HOLD, and
  if the inclination had changed by a third of `bend_min_deg` a failure ("bend further").
- BENDING ("return_to_neutral"): until the upper sensor's inclination is back within
  `return_max_deg` of neutral: then the windows are reported (`Found`). Not back within
  `bend_timeout_s`: a failure is reported.

In "neutral" mode (a calibration whose straps are known but whose heading is not) READY at once
reports the quiet period as the neutral window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from processing.alignment import AlignedFrames
from processing.calibration import REDO_FURTHER, REDO_NEUTRAL, CalibrationParams

Phase = Literal["waiting_for_sensors", "hold_still", "bend_forward", "return_to_neutral",
                "calibrated", "failed"]
G = 9.81


@dataclass(frozen=True)
class CalibrationStatus:
    phase: Phase
    message: str
    progress: float  # 0..1

    def as_dict(self) -> dict[str, object]:
        return {"phase": self.phase, "message": self.message, "progress": round(self.progress, 3)}


@dataclass(frozen=True)
class Found:
    """Calibration windows found in the stream (bend_s None in neutral mode)."""

    neutral_s: tuple[float, float]
    bend_s: tuple[float, float] | None


@dataclass(frozen=True)
class Failed:
    message: str


MSG_WAIT = "Waiting for both sensors."
MSG_HOLD = "Stand upright and relaxed, and hold still."
MSG_BEND = "Now bend forward slowly, as far as is comfortable, then come back up."
MSG_RETURN = "Good. Now come back up slowly to standing."


@dataclass
class _Blocks:
    index: np.ndarray  # (B,) block numbers
    quiet: np.ndarray  # (B,) gyro and acc quiet on both sensors
    up_l: np.ndarray  # (B, 3) mean up direction, lower sensor frame (unit)
    up_u: np.ndarray  # (B, 3)


def _block_features(f: AlignedFrames, index: np.ndarray, p: CalibrationParams) -> _Blocks:
    starts = np.flatnonzero(np.concatenate(([True], index[1:] != index[:-1])))
    gyr = np.maximum(np.linalg.norm(f.gyr_lower, axis=1), np.linalg.norm(f.gyr_upper, axis=1))
    acc = np.maximum(np.abs(np.linalg.norm(f.acc_lower, axis=1) - G),
                     np.abs(np.linalg.norm(f.acc_upper, axis=1) - G))
    quiet = ((np.maximum.reduceat(gyr, starts) < p.quiet_gyr_rad_s)
             & (np.maximum.reduceat(acc, starts) < p.quiet_acc_m_s2))
    ups = []
    # the accelerometer's direction, not the orientation filter's: in the first seconds the
    # filter's inclination still converges (its bias estimate is not there yet), the
    # accelerometer at rest is right at once; the slow calibration bend accelerates it little
    for a in (f.acc_lower, f.acc_upper):
        u = np.add.reduceat(a, starts, axis=0)
        ups.append(u / np.linalg.norm(u, axis=1, keepdims=True))
    return _Blocks(index[starts], quiet, ups[0], ups[1])


def _angle_deg(a: list[float], b: list[float]) -> float:
    """Angle between two unit 3-vectors, degrees (plain floats: one per block, scalar math is
    faster than numpy on three numbers)."""
    return math.degrees(math.acos(max(-1.0, min(1.0, a[0] * b[0] + a[1] * b[1] + a[2] * b[2]))))


class CalibrationDetector:
    """Streaming detector of the calibration windows (see module docstring)."""

    def __init__(self, params: CalibrationParams = CalibrationParams(),
                 mode: Literal["full", "neutral"] = "full") -> None:
        self.params = params
        self.mode = mode
        self._partial = AlignedFrames.empty()  # frames of the last, incomplete block
        self._held: _Blocks | None = None  # complete blocks not yet evaluated
        self._held_pos = 0
        self._seen = False
        self._failure: str | None = None  # shown until the patient is ready again
        self.last_failure: str | None = None  # kept: why the latest attempt failed
        self._restart()

    def _restart(self) -> None:
        self._state = "HOLD"
        self._run_start: int | None = None  # block number where the quiet run began
        self._last_block: int | None = None
        self._ref_l = self._ref_u = None
        self._move_start = 0
        self._theta = 0.0
        self._peak = 0.0

    def fail(self, message: str) -> None:
        """The found windows gave no usable calibration: start over (after them)."""
        self._failure = self.last_failure = message
        self._restart()

    def update(self, frames: AlignedFrames) -> Found | Failed | None:
        """Feed frames; evaluates complete blocks until windows are found or a failure occurs.

        After a `Found` or `Failed`, call again (with no new frames) to go on with blocks that
        came in the same update.
        """
        if len(frames):
            self._seen = True
            f = AlignedFrames.concat([self._partial, frames])
            index = np.floor(f.time_s / self.params.block_s).astype(np.int64)
            cut = int(np.searchsorted(index, index[-1], side="left"))
            self._partial = f.take(slice(cut, None))
            if cut:
                new = _block_features(f.take(slice(0, cut)), index[:cut], self.params)
                self._held = new if self._held is None else _Blocks(
                    *(np.concatenate((getattr(self._held, k)[self._held_pos:], getattr(new, k)))
                      for k in ("index", "quiet", "up_l", "up_u")))
                self._held_pos = 0
        if self._held is None:
            return None
        h = self._held
        pos = self._held_pos
        for b, quiet, up_l, up_u in zip(h.index[pos:].tolist(), h.quiet[pos:].tolist(),
                                        h.up_l[pos:].tolist(), h.up_u[pos:].tolist()):
            self._held_pos += 1
            result = self._step(b, quiet, up_l, up_u)
            if result is not None:
                return result
        self._held, self._held_pos = None, 0
        return None

    # -- the state machine, one block at a time --------------------------------------------
    def _step(self, b: int, quiet: bool, up_l: list[float],
              up_u: list[float]) -> Found | Failed | None:
        if self._state == "DONE":
            return None
        p = self.params
        bs = p.block_s
        contiguous = self._last_block is not None and b == self._last_block + 1
        self._last_block = b
        n_quiet = max(1, int(round(p.min_quiet_s / bs)))
        n_timeout = int(round(p.bend_timeout_s / bs))

        if self._state in ("HOLD", "READY"):
            if self._run_start is None:
                self._new_run(b, quiet, up_l, up_u)
                return None
            if (quiet and contiguous and _angle_deg(up_l, self._ref_l) < p.quiet_tilt_deg
                    and _angle_deg(up_u, self._ref_u) < p.quiet_tilt_deg):
                if self._state == "HOLD" and b - self._run_start + 1 >= n_quiet:
                    self._state = "READY"
                    self._failure = None
                    if self.mode == "neutral":
                        t1 = (b + 1) * bs
                        return Found((max(self._run_start * bs, t1 - p.neutral_max_s), t1), None)
                return None
            if self._state == "READY":  # the quiet run ends here: the bend begins
                self._state = "MOVING"
                self._move_start = b
                self._peak = 0.0
                return self._moving(b, quiet, up_l, up_u, n_timeout)
            self._new_run(b, quiet, up_l, up_u)  # HOLD: run broken, maybe a new one starts
            return None

        if self._state == "MOVING":
            return self._moving(b, quiet, up_l, up_u, n_timeout)

        # BENDING
        theta = _angle_deg(up_u, self._ref_u)
        self._theta = theta
        self._peak = max(self._peak, theta)
        if theta <= p.return_max_deg:
            run_end = self._move_start * bs
            neutral = (max(self._run_start * bs, run_end - p.neutral_max_s),
                       run_end - p.neutral_margin_s)
            bend = (run_end - p.bend_pre_s, (b + 1) * bs)
            self._state = "DONE"
            return Found(neutral, bend)
        if b - self._move_start >= n_timeout:
            self._failure = self.last_failure = f"You stayed bent over too long. {REDO_NEUTRAL}"
            self._restart()
            return Failed(self._failure)
        return None

    def _moving(self, b: int, quiet: bool, up_l: list[float], up_u: list[float],
                n_timeout: int) -> Failed | None:
        p = self.params
        theta = _angle_deg(up_u, self._ref_u)
        self._theta = theta
        self._peak = max(self._peak, theta)
        if theta >= p.bend_min_deg:
            self._state = "BENDING"
            self._peak = theta
        elif (quiet and theta < p.quiet_tilt_deg
              and _angle_deg(up_l, self._ref_l) < p.quiet_tilt_deg) \
                or b - self._move_start >= n_timeout:
            peak = self._peak
            self._restart()  # stopped without bending far enough: hold still again
            if peak >= p.bend_min_deg / 3:  # it looked like an attempt: say what to change
                msg = f"The bend was too small ({peak:.0f}°). {REDO_FURTHER}"
                self._failure = self.last_failure = msg
                return Failed(self._failure)
        return None

    def _new_run(self, b: int, quiet: bool, up_l: list[float], up_u: list[float]) -> None:
        if quiet:
            self._run_start, self._ref_l, self._ref_u = b, up_l, up_u
        else:
            self._run_start = None

    # -- status ------------------------------------------------------------------------------
    def status(self) -> CalibrationStatus:
        p = self.params
        if not self._seen:
            return CalibrationStatus("waiting_for_sensors", MSG_WAIT, 0.0)
        if self._state == "HOLD":
            run = 0.0
            if self._run_start is not None and self._last_block is not None:
                run = (self._last_block - self._run_start + 1) * p.block_s
            progress = 0.4 * min(1.0, run / p.min_quiet_s)
            if self._failure is not None:
                return CalibrationStatus("failed", self._failure, progress)
            return CalibrationStatus("hold_still", MSG_HOLD, progress)
        if self._state in ("READY", "MOVING"):
            prog = 0.4 + 0.3 * min(1.0, self._theta / p.bend_min_deg) if self._state == "MOVING" \
                else 0.4
            return CalibrationStatus("bend_forward", MSG_BEND, prog)
        if self._state == "DONE":
            return CalibrationStatus("return_to_neutral", MSG_RETURN, 1.0)
        span = max(self._peak - p.return_max_deg, 1e-6)
        prog = 0.7 + 0.3 * min(1.0, max(0.0, (self._peak - self._theta) / span))
        return CalibrationStatus("return_to_neutral", MSG_RETURN, prog)
