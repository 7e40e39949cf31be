"""Patient-reported outcomes: pain NRS, RMDQ, trends."""

from __future__ import annotations

import math

import pytest

from feedback.outcomes import (
    RMDQ_ITEMS,
    OutcomeError,
    SessionPain,
    pain_trend,
    parse_pain,
    rmdq_change,
    rmdq_due,
    score_rmdq,
)


@pytest.mark.parametrize("value, expected", [(0, 0), (10, 10), ("7", 7), (" 3 ", 3), (4.0, 4)])
def test_pain_accepts_whole_numbers_0_to_10(value: object, expected: int) -> None:
    assert parse_pain(value) == expected


@pytest.mark.parametrize("value", [-1, 11, 3.5, "seven", "", None, True, math.nan, "5/10", [5]])
def test_pain_nonsense_is_refused_with_what_is_allowed(value: object) -> None:
    with pytest.raises(OutcomeError, match="whole number from 0 .* to 10"):
        parse_pain(value)


def test_session_pain_change() -> None:
    assert SessionPain(3, 5).change == 2
    with pytest.raises(OutcomeError, match="pain after"):
        SessionPain(3, 12)


def test_rmdq_scoring_and_schedule() -> None:
    assert RMDQ_ITEMS == 24
    assert score_rmdq([True] * 5 + [False] * 19) == 5
    assert score_rmdq(["yes"] * 24) == 24
    with pytest.raises(OutcomeError, match="24 yes/no items"):
        score_rmdq([True] * 23)
    with pytest.raises(OutcomeError, match="item 3"):
        score_rmdq([True, False, "maybe"] + [False] * 21)
    assert rmdq_due(0) and rmdq_due(2) and rmdq_due(12) and not rmdq_due(3)
    assert not rmdq_due(4, done_weeks=[0, 2, 4])


def test_rmdq_important_change_is_3_points_or_30_percent() -> None:
    assert rmdq_change(12, 9).important_improvement  # 3 points (25 %)
    assert rmdq_change(5, 3).important_improvement  # 40 %
    assert not rmdq_change(12, 10).important_improvement  # 2 points, 17 %
    with pytest.raises(OutcomeError):
        rmdq_change(25, 3)


def test_pain_trend_within_person_30_percent() -> None:
    sessions = [SessionPain(b, a) for b, a in [(6, 5), (6, 6), (6, 5), (5, 4), (4, 4), (4, 3)]]
    tr = pain_trend(sessions, window=3)
    assert tr.per_session_change == (-1, 0, -1, -1, 0, -1)
    assert tr.rolling_before[-1] == pytest.approx(13 / 3)
    assert tr.overall is not None
    assert tr.overall.share == pytest.approx((13 / 3 - 6) / 6)
    assert not tr.overall.important_improvement  # 28 %: not yet 30 %
    better = sessions + [SessionPain(3, 3)] * 3
    assert pain_trend(better, window=3).overall.important_improvement  # type: ignore[union-attr]
