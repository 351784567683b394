"""The detection pipeline, one subpackage per job: `detection` (the algorithm: the MTCNN and
Cascade-CNN detectors and their steps), `fast` (the speed machinery behind the detectors' runner
seam), `data` (photos, face lists, WIDER FACE), `training`, `evaluation`, `plots` and `cli` (the
``facecascade`` command)."""

__version__ = "0.1.0"


def __getattr__(name):
    # The detector pulls in the nets and their weights; load it only when asked for, so that
    # `import pipeline.detection.boxes` (and `facecascade --version`) stay light.
    if name == "MTCNNDetector":
        from .detection.mtcnn import MTCNNDetector

        return MTCNNDetector
    if name == "CascadeDetector":
        from .detection.cascade import CascadeDetector

        return CascadeDetector
    if name == "extract_faces":  # aligned face crops (pipeline.detection.align), also loaded on first use
        from .detection.align import extract_faces

        return extract_faces
    if name in ("Face", "Trace"):
        from .detection import trace

        return getattr(trace, name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")


__all__ = ["MTCNNDetector", "CascadeDetector", "Face", "Trace", "extract_faces", "__version__"]
