"""The `facecascade` command line (also `python -m pipeline`).

    facecascade gradcheck            numerical gradient check of every layer and loss
    facecascade detect PATH...       find faces in images or folders of images
    facecascade demo                 the whole MTCNN pipeline on a sample photo, figure by figure
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from . import __version__


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facecascade",
        description="Face detection with convolutional cascades (MTCNN), written in NumPy.")
    parser.add_argument("--version", action="version", version=f"facecascade {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    grad = commands.add_parser("gradcheck", help="check every layer's backward pass against numerical gradients")
    grad.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")

    detect = commands.add_parser("detect", help="detect faces in images (files or folders)")
    detect.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="image files or folders of images")
    detect.add_argument("--min-face", type=_positive_float, default=20.0,
                        help="smallest face to find, in pixels (default 20)")
    detect.add_argument("--out", type=Path, default=Path("facecascade-out"),
                        help="folder for the annotated images (default ./facecascade-out)")
    detect.add_argument("--json", action="store_true", help="also write one JSON file of detections per image")

    demo = commands.add_parser("demo", help="run MTCNN on a sample photo and write one figure per stage")
    demo.add_argument("--out", type=Path, default=Path("facecascade-demo"),
                      help="folder for the figures (default ./facecascade-demo)")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    handler = {"gradcheck": run_gradcheck, "detect": run_detect, "demo": run_demo}[args.command]
    return handler(args)


def run_gradcheck(args) -> int:
    from layers.gradcheck_suite import format_table, run_all

    rows = run_all(seed=args.seed)
    print(format_table(rows))
    failed = [r for _, _, r in rows if not r.passed]
    print(f"\n{len(rows) - len(failed)} passed, {len(failed)} failed")
    for r in failed:
        print(r.report())
    return 1 if failed else 0


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def faces_json(faces) -> str:
    """The detections as JSON, one face per line:
    [{"box": [x1, y1, x2, y2], "score": s, "landmarks": [[x, y], ...]}, ...]."""
    if not faces:
        return "[]\n"
    return "[\n" + ",\n".join(json.dumps(face.to_dict()) for face in faces) + "\n]\n"


def _output_stem(path: Path, used: set[str]) -> str:
    """The file stem for an image's outputs, made unique when two inputs share a name."""
    stem, n = path.stem, 1
    while stem in used:
        n += 1
        stem = f"{path.stem}-{n}"
    used.add(stem)
    return stem


def run_detect(args) -> int:
    from tqdm import tqdm

    from .annotate import annotate
    from .images import ImageError, list_images, load_image
    from .mtcnn import MTCNNDetector

    paths = list_images(args.paths)
    if not paths:
        print("error: no images found in " + ", ".join(str(p) for p in args.paths), file=sys.stderr)
        return 1
    detector = MTCNNDetector(min_face_size=args.min_face)
    args.out.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    n_faces, errors, start = 0, 0, time.perf_counter()
    for path in tqdm(paths, desc="detect", unit="image", disable=None, file=sys.stderr):
        try:
            image = load_image(path)
        except ImageError as exc:
            tqdm.write(f"error: {exc}", file=sys.stderr)
            errors += 1
            continue
        faces = detector.detect(image)
        n_faces += len(faces)
        stem = _output_stem(path, used)
        annotate(image, faces).save(args.out / f"{stem}.png")
        if args.json:
            (args.out / f"{stem}.json").write_text(faces_json(faces))
        tqdm.write(f"{path}: {_count(len(faces), 'face')}", file=sys.stdout)
    seconds = time.perf_counter() - start
    print(f"{len(paths) - errors} of {_count(len(paths), 'image')} processed, {_count(n_faces, 'face')}, "
          f"{_count(errors, 'error')}, {seconds:.1f} s; results in {args.out}/")
    return 1 if errors else 0


def run_demo(args) -> int:
    from .demo import write_demo

    for path in write_demo(args.out):
        print(f"wrote {path}")
    return 0
