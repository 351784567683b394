"""The detectors' algorithm, as the papers describe it: pyramid, proposals, boxes and NMS, crops,
calibration, and the stages of `mtcnn.MTCNNDetector` and `cascade.CascadeDetector`. The stages
ask a runner (`runner`) for their heavy steps; the fast one lives in `pipeline.fast`, which
nothing here imports except `runner.make_runner`."""
