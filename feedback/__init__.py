"""Feedback: exercise definitions, repetition detection, scoring and the practice engine.

Pure logic driven by the angle stream (time comes with the samples): no I/O, no clocks.
"""
