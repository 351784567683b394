"""The detection pipeline: images, pyramid, boxes, NMS, crops, the MTCNN and Cascade-CNN
detectors, training, evaluation and the CLI."""

__version__ = "0.1.0"


def __getattr__(name):
    # The detector pulls in the nets and their weights; load it only when asked for, so that
    # `import pipeline.boxes` (and `facecascade --version`) stay light.
    if name == "MTCNNDetector":
        from .mtcnn import MTCNNDetector

        return MTCNNDetector
    if name == "CascadeDetector":
        from .cascade import CascadeDetector

        return CascadeDetector
    if name == "extract_faces":  # aligned face crops (pipeline.align), also loaded on first use
        from .align import extract_faces

        return extract_faces
    if name in ("Face", "Trace"):
        from . import trace

        return getattr(trace, name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")


__all__ = ["MTCNNDetector", "CascadeDetector", "Face", "Trace", "extract_faces", "__version__"]
