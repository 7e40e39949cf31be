"""Pure numeric processing: samples in, lumbar angles out. No I/O, no clocks.

Modules, one job each (data flows top to bottom):
- `quaternion`: vectorised (w, x, y, z) helpers (multiply, rotate, matrices, rotvec, slerp).
- `orientation`: `OrientationFilter` (one VQF per sensor, per batch) and `estimate_orientation`.
- `alignment`: `Aligner`, the upper sensor interpolated at the lower sensor's sample times.
- `calibration`: `calibrate` (sensor-to-segment from neutral standing and a forward bend),
  `Calibration` (serialisable), `CalibrationError` (says what to redo).
- `calibration_detector`: `CalibrationDetector`, finds the calibration movement in the stream.
- `kinematics`: R_rel = Ry(flexion)·Rx(lateral)·Rz(−rotation), inclinations, angle rates.
- `pipeline`: `LumbarPipeline.update(batch) -> AngleBatch`, `PipelineParams`, `CalibrationWindows`.
- `offline`: `analyze(recording) -> AngleBatch`, the same pipeline over a whole recording.
"""
