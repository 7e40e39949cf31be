"""Feedback schedules: after each repetition, what does the patient get to see or hear?

Motor-learning evidence (clinical.md, "Feedback that teaches"): concurrent feedback guides
strongly but creates dependence, and performance collapses when it is withdrawn; terminal,
summary, faded and bandwidth feedback all gave better retention than feedback on every trial;
let the patient estimate their own error first, give feedback on good repetitions too, and let
the patient choose some of the time when to see feedback. Each mode below is one of those:

- continuous: live band during the movement (concurrent) and the result after every repetition.
- terminal: no live band; the result after every repetition.
- bandwidth: the result only when the repetition was outside the tolerance; a short "good" (no
  number) when it was inside: praise for good repetitions, detail only where it helps.
- faded: the result after a decreasing share of repetitions, from `fade_from` at the first
  repetition to `fade_to` at the last, chosen deterministically (an accumulator, no randomness):
  the same block always gives the same schedule, which a therapist can check.
- summary: no per-repetition result; a summary every `summary_every` repetitions.
- self_controlled: nothing automatic; the patient asks when they want to see a result.
- none: retention blocks (clinical.md: judge learning on retention blocks without feedback).
"""

from __future__ import annotations

from dataclasses import dataclass

from feedback.library import FEEDBACK_MODES, ScheduleConfig

MODES: tuple[str, ...] = (*FEEDBACK_MODES, "none")


@dataclass(frozen=True, slots=True)
class ScheduleDecision:
    """What follows one repetition."""

    show_result: bool  # full knowledge of results (with numbers), after a self-estimate if asked
    praise_only: bool  # bandwidth: inside the tolerance, a short positive cue only
    summary_due: bool  # summary over the last `summary_every` repetitions
    offer: bool  # self-controlled: the patient may ask for the result


class FeedbackSchedule:
    """Deterministic per-block schedule; `after_repetition` once per counted repetition."""

    def __init__(self, mode: str, config: ScheduleConfig = ScheduleConfig(),
                 reps_in_block: int = 10) -> None:
        if mode not in MODES:
            raise ValueError(f"feedback mode must be one of {list(MODES)}, got {mode!r}")
        if reps_in_block < 1:
            raise ValueError(f"reps_in_block must be >= 1, got {reps_in_block!r}")
        self.mode = mode
        self.config = config
        self.reps_in_block = reps_in_block
        self._count = 0
        self._accumulator = 0.0
        self.results_shown = 0

    @property
    def concurrent(self) -> bool:
        """Live feedback during the movement (the band, the zone, the patient's own position)."""
        return self.mode == "continuous"

    @property
    def repetitions(self) -> int:
        return self._count

    def faded_frequency(self, rep_number: int) -> float:
        """Relative frequency of results at 1-based `rep_number`: linear from fade_from to fade_to
        over the block (Winstein & Schmidt 1990's faded schedule, made deterministic)."""
        c = self.config
        if self.reps_in_block == 1:
            return c.fade_from
        share = (rep_number - 1) / (self.reps_in_block - 1)
        return c.fade_from + (c.fade_to - c.fade_from) * min(1.0, max(0.0, share))

    def after_repetition(self, in_tolerance: bool) -> ScheduleDecision:
        self._count += 1
        k, mode = self._count, self.mode
        show = praise = summary = offer = False
        if mode in ("continuous", "terminal"):
            show = True
        elif mode == "bandwidth":
            show, praise = (False, True) if in_tolerance else (True, False)
        elif mode == "faded":
            self._accumulator += self.faded_frequency(k)
            if self._accumulator >= 1.0 - 1e-9:
                self._accumulator -= 1.0
                show = True
        elif mode == "summary":
            summary = k % self.config.summary_every == 0
        elif mode == "self_controlled":
            offer = True
        if show:
            self.results_shown += 1
        return ScheduleDecision(show, praise, summary, offer)
