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

import numpy as np
import scipy.fft


def sparc(speed: np.ndarray, fs_hz: float, *, padlevel: int = 4, fc_hz: float = 10.0,
          amp_threshold: float = 0.05) -> float:
    """Spectral arc length of a speed profile sampled at `fs_hz` (≤ 0; NaN if < 2 samples or
    all zero)."""
    v = np.asarray(speed, dtype=float)
    n = v.shape[0]
    if n < 2:
        return float("nan")
    nfft = 1 << ((n - 1).bit_length() + padlevel)  # 2^(ceil(log2 n) + padlevel)
    # the half spectrum holds the maximum of a real signal (SciPy's pocketfft: the same
    # transform as numpy's, a little faster)
    spec = scipy.fft.rfft(v, nfft)
    # only the bins up to fc are needed; the maximum of a non-negative signal's magnitude
    # spectrum is its DC value (|Σ v e^{-iωt}| ≤ Σ v), so the rest need not be looked at
    nf = min(spec.shape[0], int(np.floor(fc_hz * nfft / fs_hz)) + 1)
    peak = float(spec[0].real) if v.min() >= 0.0 else float(np.abs(spec).max())
    if not peak > 0.0:
        return float("nan")
    mag = np.abs(spec[:nf]) / peak
    above = np.flatnonzero(mag >= amp_threshold)
    if above.size < 2:
        return 0.0
    i0, i1 = int(above[0]), int(above[-1]) + 1
    mag = mag[i0:i1]
    # frequencies k·fs/nfft: normalised by the band width their steps are all 1 / (bins − 1)
    df = 1.0 / (i1 - i0 - 1)
    return float(-np.sum(np.sqrt(df * df + np.diff(mag) ** 2)))


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
