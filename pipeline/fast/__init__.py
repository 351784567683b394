"""Speed machinery, not part of the algorithm: the fast runner of the detectors (`runner`), forked
helper processes and shared memory (`parallel`, `helpers`, `forks`), the batch-last layout of
the nets (`batch_last`, `versions`), P-Net in strips (`strips`), glibc's memory thresholds
(`memory`) and training's half-batches in two processes (`replicas`). Imported by the runner
and the training loop only."""
