"""Feedback schedules: each mode's rule."""

from __future__ import annotations

import pytest

from feedback.library import ScheduleConfig
from feedback.schedules import FeedbackSchedule


def run(mode: str, inside: list[bool], **cfg: object) -> list[tuple[bool, bool, bool, bool]]:
    s = FeedbackSchedule(mode, ScheduleConfig(**cfg), len(inside))  # type: ignore[arg-type]
    return [tuple(vars_ for vars_ in (d.show_result, d.praise_only, d.summary_due, d.offer))
            for d in (s.after_repetition(i) for i in inside)]


def test_continuous_is_concurrent_and_terminal_is_not() -> None:
    assert FeedbackSchedule("continuous").concurrent
    for mode in ("terminal", "bandwidth", "faded", "summary", "self_controlled", "none"):
        assert not FeedbackSchedule(mode).concurrent
    assert all(r[0] for r in run("terminal", [True, False] * 3))
    assert all(r[0] for r in run("continuous", [True, False] * 3))


def test_bandwidth_details_only_outside_and_praises_inside() -> None:
    assert run("bandwidth", [True, False]) == [(False, True, False, False),
                                               (True, False, False, False)]


def test_faded_frequency_decreases_deterministically() -> None:
    shown = [r[0] for r in run("faded", [True] * 12, fade_from=1.0, fade_to=0.25)]
    assert shown == [r[0] for r in run("faded", [True] * 12, fade_from=1.0, fade_to=0.25)]
    assert shown[0] and sum(shown[:6]) > sum(shown[6:]) and 0 < sum(shown[6:])
    assert sum(shown) == pytest.approx(sum(1.0 - 0.75 * k / 11 for k in range(12)), abs=1)


def test_summary_every_n_and_self_controlled_offers_only() -> None:
    assert [r[2] for r in run("summary", [True] * 7, summary_every=3)] == [
        False, False, True, False, False, True, False]
    assert not any(r[0] for r in run("summary", [False] * 7))
    assert all(r == (False, False, False, True) for r in run("self_controlled", [False] * 3))
    assert all(r == (False, False, False, False) for r in run("none", [False] * 3))


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="feedback mode"):
        FeedbackSchedule("sometimes")
