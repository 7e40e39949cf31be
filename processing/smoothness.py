"""Movement smoothness of a speed profile: SPARC and LDLJ, exactly as published.

- SPARC, spectral arc length: Balasubramanian, Melendez-Calderon, Roby-Brami & Burdet, "On the
  analysis of movement smoothness", J NeuroEng Rehabil 12:112, 2015 (and their reference code).
  The speed profile is zero-padded to 2^(ceil(log2 N) + padlevel) points; its magnitude spectrum,
  normalised to its maximum, is cut at `fc_hz` and then to the band from the first to the last
  frequency whose magnitude is at least `amp_threshold`; SPARC is minus the arc length of that
  curve with frequency normalised by the band's width.
- LDLJ, log dimensionless jerk (Hogan & Sternad, "Sensitivity of smoothness measures to movement
  duration, amplitude, and arrests", J Mot Behav 41(6), 2009; as in the paper above):
  −ln( (T³ / v_peak²) · ∫ jerk² dt ) with T = N/fs and the jerk the second difference of speed.

Both are closer to zero for smoother movements. With IMUs they are computed on the gyroscope's
angular speed, not on a speed rebuilt from accelerometers, which drifts (Melendez-Calderon,
Shirota & Balasubramanian, "Estimating movement smoothness from inertial measurement units",
Front Bioeng Biotechnol 8, 2021). Checked against reference values in tests/data/smoothness.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np


def sparc(speed: np.ndarray, fs_hz: float, *, padlevel: int = 4, fc_hz: float = 10.0,
          amp_threshold: float = 0.05) -> float:
    """Spectral arc length of a speed profile sampled at `fs_hz` (≤ 0; NaN if < 2 samples or
    all zero)."""
    return float(sparc_many([np.asarray(speed, dtype=float)], [fs_hz], padlevel=padlevel,
                            fc_hz=fc_hz, amp_threshold=amp_threshold)[0])


def sparc_many(speeds: Sequence[np.ndarray], fs_hz: Sequence[float], *, padlevel: int = 4,
               fc_hz: float = 10.0, amp_threshold: float = 0.05) -> np.ndarray:
    """`sparc` of several profiles (float64 arrays) at once (the same up to float rounding in
    the final sum): the profiles that share a transform length are transformed together, one
    row each (numpy's pocketfft then works on several rows side by side, about twice as fast
    per profile, and each row's spectrum is the very one of a transform of its own), in
    buffers kept per thread (as large as the largest batch so far: a few MB offline)."""
    out = np.full(len(speeds), np.nan)
    groups: dict[int, list[int]] = {}
    for i, v in enumerate(speeds):
        n = v.shape[0]
        if n >= 2 and np.isfinite(fs_hz[i]) and fs_hz[i] > 0.0:
            # 2^(ceil(log2 n) + padlevel)
            groups.setdefault(1 << ((n - 1).bit_length() + padlevel), []).append(i)
    for nfft, idx in groups.items():
        longest = max(speeds[i].shape[0] for i in idx)
        x = _zeros(len(idx), nfft)
        for r, i in enumerate(idx):
            x[r, :speeds[i].shape[0]] = speeds[i]
        # only the bins up to fc (per profile: its own rate) are needed
        nf = np.array([min(nfft // 2 + 1, int(np.floor(fc_hz * nfft / fs_hz[i])) + 1)
                       for i in idx])
        spec = np.fft.rfft(x, axis=1, out=_spectrum(len(idx), nfft // 2 + 1))
        mag = np.abs(spec[:, :int(nf.max())])
        # the spectrum's maximum: for a non-negative signal its DC value (|Σ v e^{-iωt}| ≤ Σ v)
        peak = spec[:, 0].real.copy()
        signed = x[:, :longest].min(axis=1) < 0.0
        if signed.any():
            peak[signed] = np.abs(spec[signed]).max(axis=1)
        ok = peak > 0.0
        mag /= np.where(ok, peak, 1.0)[:, None]
        cols = np.arange(mag.shape[1])
        above = (mag >= amp_threshold) & (cols < nf[:, None])
        count = above.sum(axis=1)
        i0 = above.argmax(axis=1)
        i1 = mag.shape[1] - above[:, ::-1].argmax(axis=1)  # one past the last
        # the arc over the band from the first to the last bin above the threshold, with the
        # frequencies normalised by the band's width (steps of 1 / (bins − 1))
        df = 1.0 / np.maximum(i1 - i0 - 1, 1)
        step = np.diff(mag, axis=1)
        step *= step
        step += (df * df)[:, None]
        np.sqrt(step, out=step)
        step[(cols[:-1] < i0[:, None]) | (cols[:-1] >= (i1 - 1)[:, None])] = 0.0
        arc = -step.sum(axis=1)
        out[idx] = np.where(ok, np.where(count >= 2, arc, 0.0), np.nan)
    return out


_WORK = threading.local()


def _zeros(rows: int, cols: int) -> np.ndarray:
    """A zeroed (rows, cols) array in a buffer kept per thread: the transforms' inputs are
    megabytes, and a fresh allocation that large comes from new, zero-filled pages of the
    operating system, each one a page fault (more than the transform itself costs)."""
    buf = getattr(_WORK, "buf", None)
    if buf is None or buf.size < rows * cols:
        buf = _WORK.buf = np.empty(rows * cols)
    out = buf[:rows * cols].reshape(rows, cols)
    out.fill(0.0)
    return out


def _spectrum(rows: int, cols: int) -> np.ndarray:
    """A (rows, cols) complex array in a buffer kept per thread (as `_zeros`)."""
    buf = getattr(_WORK, "spec", None)
    if buf is None or buf.size < rows * cols:
        buf = _WORK.spec = np.empty(rows * cols, dtype=complex)
    return buf[:rows * cols].reshape(rows, cols)


def ldlj(speed: np.ndarray, fs_hz: float) -> float:
    """Log dimensionless jerk of a speed profile sampled at `fs_hz` (NaN if < 3 samples or the
    peak speed or the jerk is zero)."""
    v = np.asarray(speed, dtype=float)
    n = v.shape[0]
    if n < 3:
        return float("nan")
    peak = float(np.max(np.abs(v)))
    dt = 1.0 / fs_hz
    jerk = np.diff(v, 2) / (dt * dt)
    integral = float(np.sum(jerk * jerk)) * dt
    if peak == 0.0 or integral == 0.0:
        return float("nan")
    duration = n * dt
    return float(-np.log(duration**3 / peak**2 * integral))


def ldlj_many(speeds: Sequence[np.ndarray], fs_hz: Sequence[float]) -> np.ndarray:
    """`ldlj` of several profiles (float64 arrays) at once, in a few passes over all of them
    (equal to `ldlj` up to float rounding in the sums)."""
    k = len(speeds)
    out = np.full(k, np.nan)
    use = [i for i in range(k) if speeds[i].shape[0] >= 3]
    if not use:
        return out
    lengths = np.array([speeds[i].shape[0] for i in use])
    cat = np.concatenate([speeds[i] for i in use]) if len(use) > 1 else speeds[use[0]]
    starts = np.zeros(len(use), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    d2 = np.diff(cat, 2)  # across the joins too: those two entries per join are not summed
    sq = d2 * d2
    # Σ over [start, start + n − 2) of each profile: reduceat on (start, end) pairs
    bounds = np.empty(2 * len(use), dtype=np.int64)
    bounds[0::2] = starts
    bounds[1::2] = starts + lengths - 2
    sums = np.add.reduceat(np.append(sq, 0.0), bounds)[0::2]
    peaks = np.maximum.reduceat(np.abs(cat), starts)
    dt = 1.0 / np.array([fs_hz[i] for i in use], dtype=float)
    integral = sums / (dt * dt) ** 2 * dt
    ok = (peaks != 0.0) & (integral != 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        val = -np.log((lengths * dt) ** 3 / peaks**2 * integral)
    out[use] = np.where(ok, val, np.nan)
    return out
