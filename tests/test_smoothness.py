"""SPARC and LDLJ against the published reference values (tests/data/smoothness)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from processing.smoothness import ldlj, ldlj_many, sparc, sparc_many

DATA = Path(__file__).parent / "data" / "smoothness" / "reference.json"
REF = json.loads(DATA.read_text())
CASES = REF["cases"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_reference_values_within_1e_6(case: dict) -> None:
    speed = np.asarray(case["speed"], dtype=float)
    prm = REF["parameters"]["sparc"]
    got = sparc(speed, case["fs_hz"], padlevel=prm["padlevel"], fc_hz=prm["fc_hz"],
                amp_threshold=prm["amp_threshold"])
    assert abs(got - case["sparc"]) <= 1e-6
    assert abs(ldlj(speed, case["fs_hz"]) - case["ldlj"]) <= 1e-6


def test_documented_example_of_the_reference_code() -> None:
    t = np.arange(-1.0, 1.0, 0.01)
    v = np.exp(-5.0 * t**2)
    assert sparc(v, 100.0) == pytest.approx(-1.41403, abs=1e-5)
    assert ldlj(v, 100.0) == pytest.approx(-5.81636, abs=1e-5)


def test_smoother_is_closer_to_zero_and_scale_free() -> None:
    t = np.linspace(0.0, 1.0, 101)
    tau = t
    one = 30 * tau**2 * (1 - tau) ** 2  # minimum-jerk speed profile
    two = np.concatenate((one, one))  # two submovements: less smooth
    assert sparc(two, 100.0) < sparc(one, 100.0) < 0.0
    assert ldlj(two, 100.0) < ldlj(one, 100.0) < 0.0
    # amplitude does not matter; both are dimensionless
    assert sparc(3.0 * one, 100.0) == pytest.approx(sparc(one, 100.0), abs=1e-12)
    assert ldlj(3.0 * one, 100.0) == pytest.approx(ldlj(one, 100.0), abs=1e-12)


def test_degenerate_profiles() -> None:
    assert np.isnan(sparc(np.zeros(50), 100.0))
    assert np.isnan(ldlj(np.zeros(50), 100.0))
    assert np.isnan(sparc(np.ones(1), 100.0)) and np.isnan(ldlj(np.ones(2), 100.0))


def test_many_at_once_equals_one_by_one() -> None:
    # the batched forms (a repetition detector's batch of repetitions) give the same numbers
    rng = np.random.default_rng(0)
    speeds = [np.asarray(c["speed"], dtype=float) for c in CASES]
    speeds += [np.abs(rng.normal(size=n)).cumsum()[::-1].copy() for n in (2, 3, 7, 300, 513, 1500)]
    speeds += [np.zeros(40), rng.normal(size=200)]  # all zero: NaN; signed: the full spectrum
    fs = [float(rng.uniform(50.0, 200.0)) for _ in speeds]
    np.testing.assert_allclose(sparc_many(speeds, fs), [sparc(v, f) for v, f in zip(speeds, fs)],
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(ldlj_many(speeds, fs), [ldlj(v, f) for v, f in zip(speeds, fs)],
                               rtol=0, atol=1e-12)
