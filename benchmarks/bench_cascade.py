"""How fast is Cascade-CNN here? Run by hand: ``python benchmarks/bench_cascade.py``.

Two measurements, printed as tables (nothing is asserted):

1. Training throughput of each of the six nets: samples per second of a full training step
   (forward, softmax cross-entropy, backward, SGD update) at batch 128 on 2 threads, run as the
   training loop runs it (two replicas of the net, one per core, BLAS on one thread: see
   `pipeline.fast.replicas`), median of --repeats steps after a warm-up.
2. ``CascadeDetector.detect`` on a 640 x 480 px photo with 1 thread (BLAS and workers), median of
   --repeats runs, next to the paper's 14 frames per second on one CPU core for VGA images (about
   71 ms; Li et al., CVPR 2015) and next to the NumPy MTCNN on the same photo; then both on 2
   workers (this process and a helper process, `pipeline.fast.helpers`) when there are 2 CPUs. Needs
   the shipped Cascade-CNN weights.

Each part runs in a fresh subprocess, because BLAS reads its thread count at start-up.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from pipeline.data.location import data_location  # noqa: E402
from bench_detect import median_time  # noqa: E402  (median of repeats after one warm-up)
PAPER_MS = 1000 / 14  # 14 fps on one core for 640 x 480 (Li et al. 2015)


def training_worker(repeats: int, batch: int) -> None:
    from layers import SGD, softmax_cross_entropy
    from layers.batch_chunks import slices_not_blas
    from pipeline.fast.memory import reuse_freed_memory
    from layers.modules import without_input_gradient
    from pipeline.fast.replicas import Replicas
    from nets.cascade_weights import NET_CLASSES

    threads = os.environ.get("OPENBLAS_NUM_THREADS")
    print(f"training step, batch {batch}, {threads} threads as the training loop uses them (median of {repeats})")
    print(f"{'net':6s} {'ms/step':>8s} {'samples/s':>10s}")
    rng = np.random.default_rng(0)
    for name, cls in NET_CLASSES.items():
        net = cls(rng=rng).train()
        params = net.trainable_parameters()
        optimizer = SGD(params, lr=1e-7, momentum=0.9, weight_decay=5e-4)
        x = rng.standard_normal((batch, 3, cls.input_size, cls.input_size)).astype(np.float32)
        y = rng.integers(0, cls.num_classes, batch)
        with slices_not_blas(), reuse_freed_memory(), without_input_gradient(net), \
                Replicas(net, params=params) as model:

            def step():
                loss, dlogits = softmax_cross_entropy(model.forward(x), y)
                model.backward(dlogits)
                optimizer.step()

            for _ in range(5):  # the worker's first steps are slow: a fork copies memory on first write
                step()
            seconds = median_time(step, repeats)
        print(f"{name:6s} {seconds * 1000:8.1f} {batch / seconds:10.0f}")


def photo_640x480() -> tuple[np.ndarray, str]:
    from PIL import Image

    data = data_location()[0]  # the project's rule: FACECASCADE_DATA, else shared/data beside it
    path = data / "photos" / "2008_002470.jpg"
    if path.exists():
        return np.array(Image.open(path).convert("RGB").resize((640, 480), Image.BICUBIC)), path.name
    from skimage.data import astronaut

    return np.array(Image.fromarray(astronaut()).resize((640, 480), Image.BICUBIC)), "astronaut"


def detect_worker(repeats: int) -> None:
    from pipeline.detection.cascade import CascadeDetector
    from pipeline.detection.mtcnn import MTCNNDetector

    image, name = photo_640x480()
    cascade = CascadeDetector(workers=1)
    mtcnn = MTCNNDetector(workers=1)
    faces, trace = cascade.detect(image, trace=True)
    print(f"detect on {name} resized to 640 x 480 px, 1 thread (median of {repeats}); "
          f"Cascade-CNN finds {len(faces)} faces, MTCNN {len(mtcnn.detect(image))}")
    total = median_time(lambda: cascade.detect(image), repeats)
    reference = median_time(lambda: mtcnn.detect(image), repeats)
    print(f"{'Cascade-CNN (NumPy)':24s} {total * 1000:8.1f} ms")
    print(f"{'paper, one core':24s} {PAPER_MS:8.1f} ms   (ours / paper = {total * 1000 / PAPER_MS:.2f})")
    print(f"{'MTCNN (NumPy)':24s} {reference * 1000:8.1f} ms   (Cascade-CNN / MTCNN = {total / reference:.2f})")
    from pipeline.fast.parallel import available_cpus

    if available_cpus() >= 2:  # the same, with a helper process taking a share of every stage
        cascade2, mtcnn2 = CascadeDetector(workers=2), MTCNNDetector(workers=2)
        total2 = median_time(lambda: cascade2.detect(image), repeats)
        reference2 = median_time(lambda: mtcnn2.detect(image), repeats)
        print(f"{'Cascade-CNN, 2 workers':24s} {total2 * 1000:8.1f} ms   ({total / total2:.2f}x faster than 1; "
              f"ours / paper = {total2 * 1000 / PAPER_MS:.2f})")
        print(f"{'MTCNN, 2 workers':24s} {reference2 * 1000:8.1f} ms   ({reference / reference2:.2f}x faster than 1)")
    print("boxes after each step:")
    for step, n in trace.counts():
        print(f"  {step:40s} {n:6d}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--part", choices=["train", "detect"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part == "train":
        return training_worker(args.repeats, args.batch)
    if args.part == "detect":
        return detect_worker(args.repeats)
    for part, threads in (("train", 2), ("detect", 1)):
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
                   MKL_NUM_THREADS=str(threads))
        subprocess.run([sys.executable, __file__, "--part", part, "--repeats", str(args.repeats),
                        "--batch", str(args.batch)], env=env, check=True)
        print()


if __name__ == "__main__":
    main()
