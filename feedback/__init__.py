"""Feedback: exercises, graded targets, repetition detection, feedback schedules, progression.

Pure logic driven by the angle stream (time comes with the samples): no I/O except reading the
exercise library (`feedback.library.load_library`), no clocks.

- library.py + library/*.toml: the exercise library as therapist-editable data; validation.
- directions.py, targets.py: angles and directions; a level in degrees for one patient.
- baseline.py: the baseline protocol, the versioned `Baseline`, comparison against the MDC.
- practice.py (+ task_*.py, trial.py, quality.py, samples.py): one engine for every exercise.
- schedules.py, cues.py, practice_events.py, results.py: feedback schedules, words, events.
- progression.py, outcomes.py: advance/hold/step back; pain NRS and RMDQ.
- program.py: a day's program and the `ProgramRunner` the live service embeds.
- exercise.py, repetitions.py, scoring.py, engine.py: the original flexion engine (api/live.py).
"""
