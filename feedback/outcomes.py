"""Patient-reported outcomes: pain (NRS 0-10) around every session, and the RMDQ on a schedule.

- Pain: an integer 0-10 numeric rating scale before and after every session (clinical.md
  "Grading": "a pain rating before and after practice is part of every session"; RESOLVE's
  primary outcome is the same NRS, Bagg et al. 2022). Anything else is refused with a message
  saying what is allowed: a pain rating is never guessed.
- Clinically important change: clinical.md gives 1 point between groups, or 30 % within a
  person. Lumbo follows one person, so its "important" is a fall of at least 30 % (the 1-point
  between-group figure is reported, not used to label an individual).
- RMDQ: Roland-Morris Disability Questionnaire (Roland & Morris, Spine 1983): 24 yes/no
  statements, score = number of "yes", 0-24, higher = more disability. The item wording is
  copyrighted and is NOT included here: a deployment must licence and supply it. Minimal
  clinically important change: commonly 2-3 points (Roland & Fairbank, Spine 2000;25:3115) or
  30 % (Ostelo et al., Spine 2008;33:90-94, whose consensus also proposes 30 % to handle the
  dependence on the starting score); RESOLVE's difference was about 2.6 points at 18 weeks
  (clinical.md). Lumbo calls a fall important when it reaches 3 points or 30 %.
- Schedule: baseline, every 2 weeks, and at week 12 (the end of RESOLVE's 12 weekly sessions).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from feedback.events import plain

PAIN_MIN, PAIN_MAX = 0, 10
PAIN_IMPORTANT_SHARE = 0.30  # within a person (clinical.md)
PAIN_BETWEEN_GROUP_POINTS = 1.0  # between groups (clinical.md); reported only
RMDQ_ITEMS = 24
RMDQ_MCID_POINTS = 3.0
RMDQ_MCID_SHARE = 0.30
RMDQ_WEEKS: tuple[int, ...] = (0, 2, 4, 6, 8, 10, 12)


class OutcomeError(ValueError):
    """A patient-reported value that is not allowed; the message says what is."""


def parse_pain(value: Any, what: str = "pain") -> int:
    """An NRS rating: a whole number 0-10 (int, or a string of digits as typed in a form)."""
    allowed = (f"{what} must be a whole number from {PAIN_MIN} (no pain) to {PAIN_MAX} "
               "(worst pain imaginable)")
    if isinstance(value, bool) or value is None:
        raise OutcomeError(f"{allowed}, got {value!r}")
    if isinstance(value, str):
        text = value.strip()
        if not text.isdigit():
            raise OutcomeError(f"{allowed}, got {value!r}")
        value = int(text)
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise OutcomeError(f"{allowed}, got {value!r}")
        value = int(value)
    if not isinstance(value, int) or not PAIN_MIN <= value <= PAIN_MAX:
        raise OutcomeError(f"{allowed}, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class SessionPain:
    before: int
    after: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "before", parse_pain(self.before, "pain before"))
        object.__setattr__(self, "after", parse_pain(self.after, "pain after"))

    @property
    def change(self) -> int:
        """after - before: > 0 worse."""
        return self.after - self.before

    def as_dict(self) -> dict[str, int]:
        return {"before": self.before, "after": self.after, "change": self.change}


def score_rmdq(answers: Sequence[Any]) -> int:
    """RMDQ score: the number of "yes" among the 24 answers (True/False, or "yes"/"no")."""
    if isinstance(answers, (str, bytes)) or len(answers) != RMDQ_ITEMS:
        n = "a text" if isinstance(answers, (str, bytes)) else len(answers)
        raise OutcomeError(f"the RMDQ has {RMDQ_ITEMS} yes/no items; got {n} answers")
    score = 0
    for i, a in enumerate(answers, start=1):
        if isinstance(a, str) and a.strip().lower() in ("yes", "no"):
            a = a.strip().lower() == "yes"
        if not isinstance(a, bool):
            raise OutcomeError(f"RMDQ item {i}: answer yes or no (True/False), got {a!r}")
        score += a
    return score


def rmdq_due(week: int, done_weeks: Sequence[int] = ()) -> bool:
    """Whether an RMDQ is due in programme week `week` (0 = baseline) and not yet done."""
    if isinstance(week, bool) or not isinstance(week, int) or week < 0:
        raise OutcomeError(f"week must be a whole number >= 0, got {week!r}")
    return week in RMDQ_WEEKS and week not in done_weeks


@dataclass(frozen=True, slots=True)
class ScoreChange:
    """Change of a score where lower is better."""

    measure: str
    first: float
    latest: float
    important_points: float | None
    important_share: float

    @property
    def change(self) -> float:
        return self.latest - self.first

    @property
    def share(self) -> float | None:
        """Relative change (negative = better); None from a starting score of 0."""
        return None if self.first == 0 else self.change / self.first

    @property
    def important_improvement(self) -> bool:
        by_share = self.share is not None and -self.share >= self.important_share - 1e-9
        by_points = (self.important_points is not None
                     and -self.change >= self.important_points - 1e-9)
        return by_share or by_points

    def as_dict(self) -> dict[str, Any]:
        return {"measure": self.measure, "first": plain(self.first),
                "latest": plain(self.latest), "change": plain(self.change),
                "share": plain(self.share), "important_improvement": self.important_improvement}


def rmdq_change(first: int, latest: int) -> ScoreChange:
    for v in (first, latest):
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= RMDQ_ITEMS:
            raise OutcomeError(f"an RMDQ score is a whole number 0-{RMDQ_ITEMS}, got {v!r}")
    return ScoreChange("rmdq", first, latest, RMDQ_MCID_POINTS, RMDQ_MCID_SHARE)


@dataclass(frozen=True, slots=True)
class PainTrend:
    per_session_change: tuple[int, ...]  # after - before, per session
    rolling_before: tuple[float, ...]  # rolling mean of the before-ratings
    overall: ScoreChange | None  # first window's mean vs last window's mean (before-ratings)

    def as_dict(self) -> dict[str, Any]:
        return {"per_session_change": list(self.per_session_change),
                "rolling_before": plain(list(self.rolling_before)),
                "overall": None if self.overall is None else self.overall.as_dict()}


def pain_trend(sessions: Sequence[SessionPain], window: int = 3) -> PainTrend:
    """Per-session change, rolling mean of pain before sessions, and the change from the first
    `window` sessions to the last `window` (means smooth day-to-day swings). Important = a fall
    of at least 30 % (within a person, clinical.md); no points threshold for individuals."""
    if window < 1:
        raise OutcomeError("window must be >= 1")
    before = [s.before for s in sessions]
    rolling = tuple(sum(before[max(0, i - window + 1):i + 1]) / len(before[max(0, i - window + 1):
                    i + 1]) for i in range(len(before)))
    overall = None
    if len(before) >= 2 * window:
        first = sum(before[:window]) / window
        last = sum(before[-window:]) / window
        overall = ScoreChange("pain_before", first, last, None, PAIN_IMPORTANT_SHARE)
    return PainTrend(tuple(s.change for s in sessions), rolling, overall)
