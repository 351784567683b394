"""How fast are the detectors trained here, next to the released MTCNN, on ordinary photos?

Run by hand (nothing is asserted): ``python benchmarks/bench_trained.py [--photos 40] [--rounds 3]``.

The photos are the first --photos WIDER FACE photos of the kit's validation split (crowds,
meetings, streets; 1024 px wide), found as the project finds the data kit. Each detector runs
with min face 20 px, its own thresholds and one worker (one process, BLAS on one thread), over
all the photos; the rounds alternate the detectors so that a slow spell of the machine hits all
of them. Printed: the median over rounds of the time per photo, its ratio to the released
MTCNN's, and the windows each stage passed on (the thresholds set how many windows the later
nets see, which is most of the difference in time).

    --mtcnn-weights DIR    the scratch MTCNN to time (default: the shipped set, "scratch")
    --cascade-weights DIR  the Cascade-CNN to time (default: the shipped set)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before NumPy loads BLAS: one core, as --workers 1
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.data.location import data_dir  # noqa: E402


def detectors(mtcnn_weights: str, cascade_weights: str | None) -> dict:
    from pipeline import CascadeDetector, MTCNNDetector

    return {"MTCNN, released": MTCNNDetector(min_face_size=20, workers=1),
            "MTCNN, trained here": MTCNNDetector(min_face_size=20, weights=mtcnn_weights, workers=1),
            "Cascade-CNN, trained here": CascadeDetector(min_face_size=20, weights=cascade_weights, workers=1)}


def windows_passed(trace) -> tuple[int, int]:
    """(windows that stage 2 looks at, windows that stage 3 looks at) in one detection; the
    Cascade-CNN fills the same Trace fields (named after MTCNN's stages)."""
    return len(trace.stage2_input), len(trace.stage3_input)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mtcnn-weights", default="scratch")
    parser.add_argument("--cascade-weights", default=None)
    args = parser.parse_args()

    from pipeline.data.images import load_image
    from pipeline.data.wider import wider_split

    kit = data_dir(needs=("wider/wider_face_bbx_gt.txt",))
    images = [load_image(photo.path) for photo in wider_split(kit, "val")[: args.photos]]
    found = detectors(args.mtcnn_weights, args.cascade_weights)
    for detector in found.values():  # warm-up: lazy imports, the nets' fast layouts
        detector.detect(images[0])
    times = {name: [] for name in found}
    for _ in range(args.rounds):
        for name, detector in found.items():
            start = time.perf_counter()
            for image in images:
                detector.detect(image)
            times[name].append((time.perf_counter() - start) / len(images))
    passed = {}
    for name, detector in found.items():
        counts = []
        for image in images:
            faces, trace = detector.detect(image, trace=True)
            counts.append((*windows_passed(trace), len(faces)))
        passed[name] = [statistics.mean(c[i] for c in counts) for i in range(3)]
    base = statistics.median(times["MTCNN, released"])
    print(f"{len(images)} WIDER FACE validation photos, min face 20 px, 1 worker, median of {args.rounds} rounds")
    print(f"{'detector':28s} {'ms/photo':>9s} {'ratio':>6s}   mean per photo: windows into stage 2, into stage 3, faces")
    for name, values in times.items():
        t = statistics.median(values)
        a, b, c = passed[name]
        print(f"{name:28s} {1000 * t:9.1f} {t / base:6.2f}   {a:8.1f} {b:8.1f} {c:6.1f}")


if __name__ == "__main__":
    main()
