"""`estimate_orientation` on a real recording with optical ground truth: a BROAD excerpt.

Scored the BROAD way (Laidig et al., Data 6(7), 2021): error quaternion q_est ⊗ q_opt⁻¹ in the
earth frame, inclination error 2·acos(√(w² + z²)), total error 2·acos|w|, RMS over the samples
marked as movement, NaN samples left out, no alignment. The excerpt (tests/data/broad/README.md):
8 s of rest and 30 s of fast combined rotation and translation. On it VQF with its defaults
scores 1.73° inclination and 2.60° 9D total; `estimate_orientation` 1.68° and 2.02°.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import vqf

from processing import quaternion as qt
from processing.orientation import estimate_orientation

DATA = Path(__file__).parent / "data" / "broad" / "21_undisturbed_fast_combined_excerpt.npz"


def broad_errors(q: np.ndarray, q_opt: np.ndarray, movement: np.ndarray) -> tuple[float, float]:
    """(inclination RMSE, total RMSE) in degrees."""
    e = qt.multiply(q, qt.conjugate(q_opt))
    ok = movement & ~np.isnan(e).any(axis=1)
    e = e[ok]
    inc = 2.0 * np.arccos(np.clip(np.sqrt(e[:, 0] ** 2 + e[:, 3] ** 2), 0.0, 1.0))
    tot = 2.0 * np.arccos(np.clip(np.abs(e[:, 0]), 0.0, 1.0))
    return (float(np.degrees(np.sqrt(np.mean(inc**2)))),
            float(np.degrees(np.sqrt(np.mean(tot**2)))))


@pytest.fixture(scope="module")
def trial() -> dict[str, np.ndarray]:
    d = np.load(DATA)
    return {k: d[k] for k in d.files}


def test_excerpt_is_what_the_readme_says(trial: dict[str, np.ndarray]) -> None:
    assert trial["imu_gyr"].dtype == np.float32 and trial["imu_gyr"].shape == (10856, 3)
    assert float(trial["sampling_rate"]) == pytest.approx(285.714, abs=1e-3)
    assert not trial["movement"][:2000].any() and trial["movement"].sum() > 8000
    assert DATA.stat().st_size < 400_000


def test_inclination_and_9d_error_at_least_as_good_as_vqf(trial: dict[str, np.ndarray]) -> None:
    rate = float(trial["sampling_rate"])
    gyr, acc, mag = (np.ascontiguousarray(trial[k], dtype=float)
                     for k in ("imu_gyr", "imu_acc", "imu_mag"))
    q_opt = trial["opt_quat"].astype(float)
    mov = trial["movement"]
    ref = vqf.VQF(1.0 / rate).updateBatch(gyr, acc, mag)
    ref_inc6, _ = broad_errors(ref["quat6D"], q_opt, mov)
    ref_inc9, ref_tot9 = broad_errors(ref["quat9D"], q_opt, mov)

    inc6, _ = broad_errors(estimate_orientation(gyr, acc, rate_hz=rate), q_opt, mov)
    inc9, tot9 = broad_errors(estimate_orientation(gyr, acc, mag, rate_hz=rate), q_opt, mov)
    print(f"VQF defaults: {ref_inc6:.3f} {ref_inc9:.3f} {ref_tot9:.3f}; "
          f"ours: {inc6:.3f} {inc9:.3f} {tot9:.3f}")
    assert inc6 < 2.0 and inc9 < 2.0 and tot9 < 2.5
    assert inc6 <= ref_inc6 + 1e-3
    assert inc9 <= ref_inc9 + 1e-3
    assert tot9 <= ref_tot9 + 1e-3


def test_quaternions_are_unit_and_real_time(trial: dict[str, np.ndarray]) -> None:
    rate = float(trial["sampling_rate"])
    gyr, acc = (np.asarray(trial[k], dtype=float) for k in ("imu_gyr", "imu_acc"))
    q = estimate_orientation(gyr, acc, rate_hz=rate)
    assert q.shape == (len(gyr), 4)
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-9)
    # causal: the first half alone gives the same first half
    half = len(gyr) // 2
    np.testing.assert_array_equal(estimate_orientation(gyr[:half], acc[:half], rate_hz=rate),
                                  q[:half])
