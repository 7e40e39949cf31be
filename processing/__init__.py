"""Pure numeric processing: samples in, lumbar angles out. No I/O, no clocks.

Modules, one job each (data flows top to bottom):
- `quaternion`: vectorised (w, x, y, z) helpers (multiply, rotate, matrices, rotvec, slerp, nlerp).
- `orientation`: `estimate_orientation` (the public per-sensor estimator, 6D or 9D, real time) and
  `OrientationFilter` (one VQF per sensor, per batch, gaps filled, rest events applied).
- `rest_bias`: `JointRestDetector`, gyroscope bias at rest decided on both sensors together.
- `sensor_pair`: `PairedOrientation`, the two filters and the joint rest bias, batch-independent.
- `alignment`: `Aligner`, the upper sensor interpolated at the lower sensor's sample times.
- `calibration`: `calibrate` (sensor-to-segment from neutral standing and a forward bend),
  `Calibration` (serialisable), `CalibrationError` (says what to redo).
- `calibration_detector`: `CalibrationDetector`, finds the calibration movement in the stream.
- `heading`: `HeadingDriftCorrector`, the two 6D filters' relative heading drift, measured in
  neutral stance (keeps axial rotation right without a magnetometer).
- `kinematics`: R_rel = Ry(flexion)·Rx(lateral)·Rz(−rotation), inclinations, angle rates.
- `angles`: `AngleBatch`, the angles and rates at the lower sensor's sample times.
- `smoothness`: `sparc`, `ldlj` (Balasubramanian et al. 2015; Hogan & Sternad 2009).
- `segmentation`: `Segmenter` (streaming) and `segment`: repetitions and holds with their metrics.
- `pipeline`: `LumbarPipeline.update(batch) -> AngleBatch`, `PipelineParams`, `CalibrationWindows`.
- `offline`: `analyze(recording) -> AngleBatch`, `analyze_detailed` (+ calibration, repetitions),
  the same pipeline over a whole recording.
"""
