"""The simulated patient: a biomechanical model of pelvis and lumbar spine wearing two IMUs.

It turns a movement script into physically consistent accelerometer, gyroscope and magnetometer
samples for the `lower` (S2) and `upper` (T12/L1) sensors, keeps the true angles for tests, and
plays as a `SensorSource` in real time or as fast as possible. Modules, one job each:
script (timeline and min-jerk profiles), sessions (ready-made scripts), body (pelvis/lumbar
kinematics), imu (sensor readings and errors), noise (index-addressed random streams),
patient (recording and truth), source (live streaming).
"""

from sensors.simulation.params import BodyGeometry, PatientParams
from sensors.simulation.patient import SimulatedPatient, TruthAngles
from sensors.simulation.script import (
    DIRECTIONS,
    Bend,
    Direction,
    MovementScript,
    Repeat,
    Repetition,
    Stand,
    bend,
    min_jerk,
)
from sensors.simulation.sessions import (
    calibration_block,
    calibration_then_flexion_reps,
    demo_script,
    mixed_session,
)
from sensors.simulation.source import SimulatedPatientSource

__all__ = [
    "DIRECTIONS",
    "Bend",
    "BodyGeometry",
    "Direction",
    "MovementScript",
    "PatientParams",
    "Repeat",
    "Repetition",
    "SimulatedPatient",
    "SimulatedPatientSource",
    "Stand",
    "TruthAngles",
    "bend",
    "calibration_block",
    "calibration_then_flexion_reps",
    "demo_script",
    "min_jerk",
    "mixed_session",
]
