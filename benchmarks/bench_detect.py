"""How fast is the NumPy MTCNN? Run by hand: ``python benchmarks/bench_detect.py``.

Times ``MTCNNDetector.detect`` (median of --repeats runs after one warm-up; ``workers`` and
torch threads set to the thread count) on a 512 x 512 portrait (scikit-image's astronaut) and a
1280 x 886 group photo (photo 2008_002470 of the data kit, $FACECASCADE_DATA, enlarged; without
the kit, a collage of the package photos), with 1 and 2 BLAS threads, and prints the time of
each stage. If facenet-pytorch is importable, it times the reference MTCNN on the same images,
in a process of its own, and prints our time / its time (the target is 0.5 or less). Separate
processes, because in one process each library's idle worker threads (OpenBLAS's, OpenMP's)
keep spinning on the cores for a while after a call and slow the other library down. The two
are timed alternately, --rounds times (each time in fresh processes), and the table gives the
medians and the range of the rounds' ratios: this VM has slow spells of several seconds, which
would otherwise fall on one library and not the other.

It also prints, per stage, the GMAC/s its net reached (forward multiply-adds of all the stage's
pyramid levels or crops / the stage's time) next to a plain float32 matrix multiply of the size
of the net's largest layer over the whole stage: how close the net comes to what BLAS can do.
``--new-sizes`` also times photos of sizes the detector has not seen yet, as in a folder of
photos (each new size builds its resize weights once), and ``--large`` a 6000 x 4000 photo with
the peak memory.

facenet-pytorch is not a dependency. To compare, install it in a separate environment next to a
torchvision that matches its torch (``pip install torch torchvision`` of matching releases, then
``pip install --no-deps facenet-pytorch``), with this project's runtime packages.

Each thread count runs in a fresh subprocess, because BLAS reads its thread count at start-up.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from pipeline.data.location import data_location  # noqa: E402
DATA = data_location()[0]  # the project's rule: FACECASCADE_DATA, else shared/data beside it


def test_images() -> dict[str, np.ndarray]:
    from pipeline.cli.demo import sample_photo

    try:
        from skimage.data import astronaut
        portrait = astronaut()
    except ImportError:  # scikit-image comes with the test extra; fall back to matplotlib's photo
        portrait = np.array(Image.fromarray(sample_photo()).resize((512, 512)))
    group_path = DATA / "photos" / "2008_002470.jpg"
    if group_path.exists():
        group = np.array(Image.open(group_path).convert("RGB").resize((1280, 886), Image.BICUBIC))
        group_name = "group 1280x886 (2008_002470 enlarged)"
    else:
        tiles = [portrait, sample_photo()]
        canvas = Image.new("RGB", (1280, 886), (128, 128, 128))
        for i in range(6):
            tile = Image.fromarray(tiles[i % 2]).resize((400, 420))
            canvas.paste(tile, (20 + (i % 3) * 420, 10 + (i // 3) * 440))
        group, group_name = np.array(canvas), "collage 1280x886 (package photos)"
    return {"portrait 512x512 (astronaut)": portrait, group_name: group}


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up: caches, lazy imports, BLAS buffers
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def stage_work(det, trace) -> dict[str, tuple[int, tuple[int, int, int]]]:
    """Per stage of one detection: the forward multiply-adds of its net over all its inputs
    (pyramid levels or crops), and the GEMM (F, C*KH*KW, columns) of its largest layer over
    the whole stage, for a plain matrix multiply of the same size."""
    from bench_train import layer_macs

    inputs = {"propose (P-Net)": (det.pnet, [tuple(size) for size in trace.level_sizes]),
              "refine (R-Net)": (det.rnet, [24] * len(trace.stage2_input)),
              "output (O-Net)": (det.onet, [48] * len(trace.stage3_input))}
    work = {}
    for stage, (net, sizes) in inputs.items():
        total, gemm = 0, (0, 0, 0)
        for size in sizes:
            macs, (F, CKK, columns) = layer_macs(net, size)
            total += macs
            gemm = (F, CKK, gemm[2] + columns)
        work[stage] = (total, gemm)
    return work


def matmul_gmacs(F: int, CKK: int, columns: int, repeats: int) -> float:
    """GMAC/s of a plain float32 (F, CKK) @ (CKK, columns) on this machine."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((F, CKK), dtype=np.float32)
    b = rng.standard_normal((CKK, max(columns, 1)), dtype=np.float32)
    return F * CKK * max(columns, 1) / median_time(lambda: a @ b, repeats) / 1e9


def time_ours(image: np.ndarray, repeats: int, threads: int) -> dict[str, float]:
    from pipeline.detection.mtcnn import MTCNNDetector, Trace

    det = MTCNNDetector(workers=threads)
    result = {}
    # the stages one at a time, exactly as detect() chains them
    stages = {"propose (P-Net)": [], "refine (R-Net)": [], "output (O-Net)": []}
    for _ in range(repeats):
        trace = Trace(image=image)
        with det.session(image) as chw:
            t0 = time.perf_counter()
            boxes = det.propose(chw, trace)
            t1 = time.perf_counter()
            boxes = det.refine(chw, boxes, trace) if len(boxes) else boxes
            t2 = time.perf_counter()
            if len(boxes):
                det.output(chw, boxes, trace)
            t3 = time.perf_counter()
        for name, dt in zip(stages, (t1 - t0, t2 - t1, t3 - t2)):
            stages[name].append(dt)
    result.update({name: statistics.median(v) for name, v in stages.items()})
    faces, trace = det.detect(image, trace=True)
    result["faces"] = len(faces)
    for stage, (macs, gemm) in stage_work(det, trace).items():
        result[stage + " GMAC/s"] = macs / result[stage] / 1e9 if result[stage] else 0.0
        result[stage + " mm GMAC/s"] = matmul_gmacs(*gemm, repeats) if macs else 0.0
    return result


def reference_detector(threads: int):
    """facenet-pytorch's detect as a function of a PIL image, or None when not installed."""
    try:
        import torch
        from facenet_pytorch import MTCNN
    except ImportError:
        return None
    torch.set_num_threads(threads)
    mtcnn = MTCNN(keep_all=True, device="cpu")

    def detect(pil):
        with torch.no_grad():
            return mtcnn.detect(pil, landmarks=True)
    return detect


def worker(threads: int, repeats: int) -> None:
    """Time our detector on the test images (this process imports no torch); prints JSON."""
    from pipeline.detection.mtcnn import MTCNNDetector

    ours = MTCNNDetector(workers=threads)
    rows = []
    for name, image in test_images().items():
        stages = time_ours(image, repeats, threads)
        stages["total"] = median_time(lambda: ours.detect(image), repeats)
        rows.append({"image": name, "threads": threads, "ours": stages})
    print(json.dumps(rows))


def reference_worker(threads: int, repeats: int) -> None:
    """Time facenet-pytorch on the test images, alone in this process; prints JSON (null
    times when it is not importable)."""
    reference = reference_detector(threads)
    times = {}
    for name, image in test_images().items():
        pil = Image.fromarray(image)
        times[name] = median_time(lambda: reference(pil), repeats) if reference else None
    print(json.dumps(times))


def large_photo_worker() -> None:
    """Detect on a 6000 x 4000 photo and print the time and the process's peak memory."""
    import resource

    from pipeline.detection.mtcnn import MTCNNDetector

    image = next(iter(test_images().values()))
    big = np.asarray(Image.fromarray(image).resize((6000, 4000), Image.BILINEAR))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    detector = MTCNNDetector()
    start = time.perf_counter()
    faces = detector.detect(big)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB -> MB on Linux
    detector.close()  # the helper processes end, so that their peak is counted below
    helper = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"6000 x 4000 photo: {len(faces)} face(s) in {seconds:.1f} s on {detector.runner.workers} workers, "
          f"peak memory {peak:.0f} MB (image and nets alone: {before:.0f} MB), its largest helper process "
          f"{helper:.0f} MB (the pages shared with this process counted in both)")


def new_sizes_worker(threads: int, count: int = 11) -> None:
    """A folder of photos has many sizes, and every new size builds the resize weights of its
    pyramid and crops (cached after). Detect on the group photo resized to ``count`` new sizes,
    each once, then on the same photos again, and print both medians."""
    from pipeline.detection.mtcnn import MTCNNDetector

    image = Image.fromarray(list(test_images().values())[1])
    photos = [np.asarray(image.resize((image.width - 7 * i, image.height - 5 * i))) for i in range(1, count + 1)]
    detector = MTCNNDetector(workers=threads)
    for _ in range(3):
        detector.detect(np.asarray(image))

    def each_once():
        times = []
        for photo in photos:
            start = time.perf_counter()
            detector.detect(photo)
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    new, again = each_once(), each_once()
    print(f"{count} new sizes of the group photo, {threads} worker(s): {new * 1e3:.0f} ms per photo the first time, "
          f"{again * 1e3:.0f} ms again")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--rounds", type=int, default=3,
                        help="ours and the reference timed alternately this many times, each in a fresh process")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--large", action="store_true", help="also time a 6000 x 4000 photo and report peak memory")
    parser.add_argument("--new-sizes", action="store_true",
                        help="also time photos of sizes the detector has not seen (as in a folder of photos)")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--reference-worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--large-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--new-sizes-worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.new_sizes_worker:
        new_sizes_worker(args.new_sizes_worker)
        return
    if args.worker:
        worker(args.worker, args.repeats)
        return
    if args.reference_worker:
        reference_worker(args.reference_worker, args.repeats)
        return
    if args.large_worker:
        large_photo_worker()
        return
    import numpy

    print(f"numpy {numpy.__version__}, {os.cpu_count()} CPUs, median of {args.repeats} runs after a warm-up, "
          f"in each of {args.rounds} rounds; the medians of the rounds\n")
    header = (f"{'image':<40} {'threads':>7} {'faces':>5} {'ours ms':>8} {'P-Net':>7} {'R-Net':>7} {'O-Net':>7} "
              f"{'ref ms':>7} {'ratio':>6} {'rounds':>11}")
    print(header)
    print("-" * len(header))
    rows_seen = []
    for threads in args.threads:
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
                   MKL_NUM_THREADS=str(threads))
        run = lambda role: json.loads(subprocess.run(  # noqa: E731
            [sys.executable, __file__, role, str(threads), "--repeats", str(args.repeats)],
            env=env, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
        # alternate the two, so that a slow spell of this shared machine falls on both
        rounds = [(run("--worker"), run("--reference-worker")) for _ in range(max(args.rounds, 1))]
        for i, row in enumerate(rounds[0][0]):
            o = {key: statistics.median(r[0][i]["ours"][key] for r in rounds) for key in row["ours"]}
            rows_seen.append({**row, "ours": o})
            refs = [r[1][row["image"]] for r in rounds]
            if all(refs):
                ratios = [r[0][i]["ours"]["total"] / ref for r, ref in zip(rounds, refs)]
                ref_text, ratio = f"{statistics.median(refs) * 1e3:7.0f}", f"{statistics.median(ratios):6.2f}"
                spread = f"{min(ratios):.2f}-{max(ratios):.2f}"
            else:
                ref_text, ratio, spread = "      -", "     -", "-"
            print(f"{row['image']:<40} {threads:>7} {o['faces']:>5.0f} {o['total'] * 1e3:8.0f} "
                  f"{o['propose (P-Net)'] * 1e3:7.0f} {o['refine (R-Net)'] * 1e3:7.0f} {o['output (O-Net)'] * 1e3:7.0f} "
                  f"{ref_text} {ratio} {spread:>11}")
    print("\nratio = ours / facenet-pytorch, the median of the rounds' ratios, and their range (the target is")
    print("<= 0.5; '-' when facenet-pytorch is not installed)")
    print("\nGMAC/s of each stage's net (its forward multiply-adds / the stage's time) and of a plain float32")
    print("matrix multiply the size of the net's largest layer over the whole stage (mm):")
    for row in rows_seen:
        o = row["ours"]
        print(f"{row['image']:<40} {row['threads']:>7} " + "  ".join(
            f"{stage.split()[1][1:-1]} {o[stage + ' GMAC/s']:5.1f} (mm {o[stage + ' mm GMAC/s']:5.1f})"
            for stage in ("propose (P-Net)", "refine (R-Net)", "output (O-Net)")))
    if args.new_sizes:
        for threads in args.threads:
            env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads))
            done = subprocess.run([sys.executable, __file__, "--new-sizes-worker", str(threads)], env=env,
                                  capture_output=True, text=True, check=True)
            print(done.stdout.strip())
    if args.large:
        done = subprocess.run([sys.executable, __file__, "--large-worker"], capture_output=True, text=True, check=True)
        print(done.stdout.strip())


if __name__ == "__main__":
    main()
