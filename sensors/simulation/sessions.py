"""Ready-made movement scripts: calibration, flexion practice, the demo session, a mixed test set.

Every script starts with the calibration block the processing expects (docs/architecture.md):
at least 5 s of quiet neutral standing, then one slow forward bend, then a few seconds still.
Any variation comes from a seeded generator, so a script is a pure function of its arguments.
Default tempos follow Laird et al. 2019 (about 2.3–3.2 s per forward bend and back).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sensors.simulation.script import Bend, Direction, MovementScript, Repeat, Stand, Step, bend

CALIBRATION_LABEL = "calibration"


def calibration_block(
    *,
    stand_s: float = 6.0,
    bend_deg: float = 80.0,
    out_s: float = 3.0,
    hold_s: float = 1.5,
    back_s: float = 3.0,
    settle_s: float = 4.0,
) -> list[Step]:
    """Quiet standing, one slow forward bend of `bend_deg` trunk flexion, and standing still."""
    if stand_s < 5.0:
        raise ValueError("calibration needs at least 5 s of quiet standing")
    return [
        Stand(stand_s, label=CALIBRATION_LABEL),
        bend("flexion", bend_deg, out_s=out_s, hold_s=hold_s, back_s=back_s,
             label=CALIBRATION_LABEL),
        Stand(settle_s, label=CALIBRATION_LABEL),
    ]


def _block_duration_s(steps: list[Step]) -> float:
    return MovementScript(steps).duration_s


def calibration_then_flexion_reps(
    n_reps: int = 10,
    amplitude_deg: float = 40.0,
    *,
    out_s: float = 1.5,
    hold_s: float = 0.5,
    back_s: float = 1.5,
    rest_s: float = 1.5,
    end_s: float = 3.0,
    amplitude_sd_deg: float = 0.0,
    seed: int = 0,
    calibration_deg: float = 80.0,
) -> MovementScript:
    """Calibration, then `n_reps` forward bends of `amplitude_deg` trunk flexion, then standing.

    With `amplitude_sd_deg` > 0 each repetition's depth varies (normal, seeded by `seed`).
    """
    calib = calibration_block(bend_deg=calibration_deg)
    rng = np.random.default_rng(seed)
    steps: list[Step] = list(calib)
    if amplitude_sd_deg == 0.0:
        one = bend("flexion", amplitude_deg, out_s=out_s, hold_s=hold_s, back_s=back_s)
        steps.append(Repeat(one, n_reps, rest_s))
    else:
        for i in range(n_reps):
            if i:
                steps.append(Stand(rest_s, label="rest"))
            depth = max(5.0, amplitude_deg + amplitude_sd_deg * rng.normal())
            steps.append(bend("flexion", depth, out_s=out_s, hold_s=hold_s, back_s=back_s))
    steps.append(Stand(end_s))
    return MovementScript(steps, loop_start_s=_block_duration_s(calib))


def demo_script(
    *,
    seed: int = 0,
    target_deg: float = 36.0,
    spread_deg: float = 5.0,
    n_sets: int = 15,
    reps_per_set: int = 10,
    set_rest_s: float = 25.0,
) -> MovementScript:
    """About 21 minutes of flexion practice for the live demo (loopable after calibration).

    Sets of forward bends to depths scattered around `target_deg` (trunk flexion): early sets
    undershoot and scatter more, later ones settle near the target, as a learner would; tempo
    and holds vary a little from bend to bend.
    """
    rng = np.random.default_rng(seed)
    calib = calibration_block()
    steps: list[Step] = list(calib)
    for s in range(n_sets):
        learning = np.exp(-s / 4.0)
        mean = target_deg - 5.0 * learning
        sd = spread_deg * (0.5 + 0.5 * learning)
        for r in range(reps_per_set):
            if r:
                steps.append(Stand(float(rng.uniform(1.5, 3.0)), label="rest"))
            depth = float(np.clip(mean + sd * rng.normal(), 10.0, 70.0))
            steps.append(
                bend(
                    "flexion",
                    depth,
                    out_s=float(rng.uniform(1.2, 2.0)),
                    hold_s=float(rng.uniform(0.3, 1.2)),
                    back_s=float(rng.uniform(1.2, 2.0)),
                )
            )
        steps.append(Stand(set_rest_s, label="pause"))
    return MovementScript(steps, loop_start_s=_block_duration_s(calib))


def _mixed_bend(kind: str, rng: np.random.Generator) -> Bend:
    timing = dict(
        out_s=float(rng.uniform(1.2, 2.5)),
        hold_s=float(rng.uniform(0.3, 1.5)),
        back_s=float(rng.uniform(1.2, 2.5)),
    )
    if kind == "flexion":
        return bend("flexion", float(rng.uniform(20.0, 60.0)), **timing)
    if kind == "extension":
        return bend("extension", float(rng.uniform(10.0, 25.0)), **timing)
    if kind.startswith("lateral"):
        return bend(kind, float(rng.uniform(10.0, 30.0)), **timing)  # type: ignore[arg-type]
    if kind.startswith("rotation"):
        return bend(kind, float(rng.uniform(8.0, 20.0)), **timing)  # type: ignore[arg-type]
    # combined: forward bend with a side bend or a twist
    side = float(rng.choice([-1.0, 1.0]))
    if rng.uniform() < 0.5:
        lateral = side * float(rng.uniform(8.0, 20.0))
        return Bend(float(rng.uniform(20.0, 40.0)), lateral, 0.0, **timing)
    rotation = side * float(rng.uniform(8.0, 15.0))
    return Bend(float(rng.uniform(20.0, 40.0)), 0.0, rotation, **timing)


_MIXED_KINDS = (
    "flexion",
    "extension",
    "lateral_right",
    "lateral_left",
    "rotation_right",
    "rotation_left",
    "combined",
)


def mixed_session(duration_s: float = 120.0, *, seed: int = 0) -> MovementScript:
    """Calibration, then flexion, extension, side bends, twists and combined bends (accuracy tests).

    Movement kinds are drawn in seeded shuffled rounds so that every kind appears; the script is
    padded with standing to exactly `duration_s`.
    """
    rng = np.random.default_rng(seed)
    steps: list[Step] = list(calibration_block())
    t = _block_duration_s(steps)
    if duration_s < t + 10.0:
        raise ValueError(f"duration_s must be at least {t + 10.0:.0f} s")
    done = False
    while not done:
        for kind in rng.permutation(_MIXED_KINDS):
            b = _mixed_bend(str(kind), rng)
            rest = float(rng.uniform(1.0, 3.0))
            if t + b.duration_s + rest > duration_s - 1.0:
                done = True
                break
            steps += [b, Stand(rest, label="rest")]
            t += b.duration_s + rest
    steps.append(Stand(duration_s - t))
    return MovementScript(steps, loop_start_s=_block_duration_s(list(calibration_block())))


# -- graded practice: the simulated patient performs a day's program ----------------------------
@dataclass(frozen=True, slots=True)
class PracticeBlock:
    """One block of practice as the simulated patient performs it.

    kind "reach": `reps` bends of about `trunk_deg` (trunk angle, as `bend`) in `direction`,
    holding `hold_s` at the peak, `pause_s` standing between them. kind "hold" (find and hold
    neutral): stand still `hold_s`, then bend `trunk_deg` away and back, `reps` times. kind
    "stand": the patient cannot perform the block's movement (the simulator has no isolated
    pelvic tilt, for example) and stands for `reps` x 5 s.
    `rest_before_s` of standing comes first: the practice engine's rest before the block plus
    `settle_s` (the engine finds the start position in the first still seconds).
    """

    direction: Direction
    trunk_deg: float
    reps: int
    rest_before_s: float = 0.0
    kind: str = "reach"
    spread_deg: float = 0.0  # sd of the depth from rep to rep (seeded)
    bias_deg: float = 0.0  # mean offset of the depth (early practice undershoots)
    hold_s: float = 1.2
    pause_s: float = 2.0
    out_s: float = 1.5
    back_s: float = 1.5
    min_deg: float = 3.0  # no repetition shallower than this (it would not count as one)


def practice_script(
    blocks: list[PracticeBlock],
    *,
    seed: int = 0,
    calibration_deg: float = 80.0,
    settle_s: float = 4.0,
    tail_s: float = 20.0,
) -> MovementScript:
    """Calibration, then each block in order (with its rest and `settle_s` still before it), then
    `tail_s` of standing. A pure function of its arguments; not meant to loop (a program ends)."""
    rng = np.random.default_rng(seed)
    steps: list[Step] = list(calibration_block(bend_deg=calibration_deg))
    for blk in blocks:
        if blk.reps < 1:
            raise ValueError("a practice block needs at least one repetition")
        steps.append(Stand(blk.rest_before_s + settle_s, label="rest"))
        for i in range(blk.reps):
            depth = float(max(blk.min_deg, 3.0,
                              blk.trunk_deg + blk.bias_deg + blk.spread_deg * rng.normal()))
            if blk.kind == "stand":
                steps.append(Stand(5.0, label="stand"))
                continue
            if blk.kind == "hold":
                steps.append(Stand(blk.hold_s, label="hold"))
                steps.append(bend(blk.direction, depth, out_s=blk.out_s, hold_s=0.3,
                                  back_s=blk.back_s, label="exercise"))
                continue
            if i:
                steps.append(Stand(blk.pause_s, label="rest"))
            steps.append(bend(blk.direction, depth, out_s=blk.out_s, hold_s=blk.hold_s,
                              back_s=blk.back_s, label="exercise"))
    steps.append(Stand(tail_s))
    return MovementScript(steps)
