"""The `facecascade` command line (also `python -m pipeline`).

    facecascade gradcheck            numerical gradient check of every layer and loss
    facecascade detect PATH...       find faces in images or folders of images
    facecascade demo [PATH]          the whole MTCNN pipeline on a photo (default: a sample), figure by figure
    facecascade evaluate             recall, false positives, ROC and WIDER FACE AP of a detector on the data kit
    facecascade train cascade        train the six Cascade-CNN nets, stage by stage
    facecascade train mtcnn          train MTCNN's P-Net, R-Net and O-Net from scratch
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

from pipeline import __version__


def _pixels(text: str) -> float:
    """--min-face: a number of pixels > 0 (argparse shows the message after the option name)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of pixels > 0, e.g. 20; got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number of pixels > 0, e.g. 20; got {text}")
    return value


def _probability(text: str) -> float:
    """One value of --thresholds: a probability in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected three probabilities between 0 and 1, e.g. 0.6 0.7 0.7; "
                                         f"got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected probabilities between 0 and 1; got {text}")
    return value


def _factor(text: str) -> float:
    """--factor: a number strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, e.g. 0.709; got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1 (exclusive), e.g. 0.709; got {text}")
    return value


def _whole_number(what: str, example: str):
    """An argparse type: a whole number >= 1, refused with a message naming ``what`` it counts."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number of {what} >= 1, e.g. {example}; "
                                             f"got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"expected a whole number of {what} >= 1, e.g. {example}; got {text}")
        return value
    return parse


_workers = _whole_number("processes", "2")               # --workers
_max_pixels = _whole_number("pixels", "400000000")      # --max-pixels


def _max_pixels_argument(parser) -> None:
    parser.add_argument("--max-pixels", type=_max_pixels, default=None, metavar="N",
                        help="read images of up to N pixels (default: Pillow's guard against decompression "
                        "bombs, about 179 million; a larger image is reported and skipped)")


def _apply_max_pixels(args) -> None:
    if getattr(args, "max_pixels", None) is not None:
        from pipeline.data.images import set_max_pixels

        set_max_pixels(args.max_pixels)


def _workers_argument(parser) -> None:
    parser.add_argument("--workers", type=_workers, default=None, metavar="N",
                        help="processes that share each photo's work (default: the CPUs, at most 4; "
                        "1 keeps everything in this process)")


DETECTORS = ("mtcnn", "cascade")  # what `facecascade evaluate --detector` can measure


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facecascade",
        description="Face detection with convolutional cascades (MTCNN and Cascade-CNN), written in NumPy.")
    parser.add_argument("--version", action="version", version=f"facecascade {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    grad = commands.add_parser("gradcheck", help="check every layer's backward pass against numerical gradients")
    grad.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")

    detect = commands.add_parser("detect", help="detect faces in images (files or folders)")
    detect.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="image files or folders of images")
    detect.add_argument("--min-face", type=_pixels, default=20.0, metavar="PX",
                        help="smallest face to find, in pixels (default 20)")
    detect.add_argument("--thresholds", type=_probability, nargs=3, default=None, metavar=("P1", "P2", "P3"),
                        help="face probability needed to pass stages 1, 2, 3 (default: the detector's own; "
                        "0.6 0.7 0.7 for mtcnn)")
    detect.add_argument("--factor", type=_factor, default=None,
                        help="pyramid shrink factor between levels, 0 < factor < 1 (default 0.709)")
    detect.add_argument("--recursive", "-r", action="store_true",
                        help="also search the subfolders of the folders given")
    detect.add_argument("--out", type=Path, default=Path("facecascade-out"),
                        help="folder for the annotated images (default ./facecascade-out)")
    detect.add_argument("--json", action="store_true", help="also write one JSON file of detections per image")
    detect.add_argument("--crops", action="store_true",
                        help="also write each face as a 112 x 112 PNG, turned upright by its five landmarks "
                        "(square box crops for a detector without landmarks), to OUT/crops/STEM_faceK.png, "
                        "K counting from 0 in the JSON's order")
    detect.add_argument("--detector", choices=DETECTORS, default="mtcnn",
                        help="mtcnn (default) or cascade (Cascade-CNN trained here)")
    _weights_argument(detect)
    _workers_argument(detect)
    _max_pixels_argument(detect)

    demo = commands.add_parser("demo", help="run MTCNN on a photo (yours, or a sample) and write one figure per stage")
    demo.add_argument("image", nargs="?", type=Path, default=None, metavar="PATH",
                      help="the photo to use (default: Grace Hopper's portrait, which ships with matplotlib)")
    demo.add_argument("--out", type=Path, default=Path("facecascade-demo"),
                      help="folder for the figures (default ./facecascade-demo)")
    demo.add_argument("--detector", choices=DETECTORS, default="mtcnn",
                      help="mtcnn (default) or cascade (Cascade-CNN trained here)")
    _weights_argument(demo)
    _max_pixels_argument(demo)

    evaluate = commands.add_parser(
        "evaluate", help="measure a detector on the face data kit (val faces, photos, face-free photos)")
    evaluate.add_argument("--detector", choices=DETECTORS, default="mtcnn",
                          help="which detector to measure (default mtcnn)")
    _data_argument(evaluate)
    evaluate.add_argument("--out", type=Path, required=True, metavar="DIR",
                          help="folder for evaluation.json and roc.png")
    evaluate.add_argument("--overwrite", action="store_true",
                          help="replace an earlier evaluation in --out (refused otherwise)")
    evaluate.add_argument("--wider", type=Path, default=None, metavar="DIR",
                          help="a WIDER FACE folder to score with the benchmark's protocol instead of the kit's "
                          "validation split: images/, wider_face_bbx_gt.txt and the benchmark's ground_truth/ "
                          "(e.g. a WIDER_val download; README: Getting the data)")
    _weights_argument(evaluate)
    _workers_argument(evaluate)
    _max_pixels_argument(evaluate)

    train = commands.add_parser("train", help="train a cascade on the face data kit")
    which = train.add_subparsers(dest="cascade", required=True)
    cascade = which.add_parser("cascade", help="Cascade-CNN: 12-net, 12-cal, 24-net, 24-cal, 48-net, 48-cal")
    _training_arguments(cascade, "weights/cascade_*.npz",
                        "net12 cal12 net24 cal24 net48 cal48; default all, in order",
                        "a smoke test of the procedure (20 WIDER photos, 20 face-free photos, 300 faces, 2 epochs "
                        "per net; a few minutes): its weights are not meant to find faces")
    mtcnn = which.add_parser("mtcnn", help="MTCNN from scratch: P-Net, R-Net, O-Net")
    _training_arguments(mtcnn, "weights/mtcnn_*.npz", "pnet rnet onet; default all, in order",
                        "a smoke test of the procedure (20 WIDER photos, 40 face-free photos, 300 landmark faces, "
                        "6 epochs per net at batch 64; a few minutes): its weights are not meant to find faces")
    return parser


def _weights_argument(parser) -> None:
    parser.add_argument("--weights", default="released", metavar="NAME",
                        help="mtcnn: released (the authors', default), scratch (trained here in NumPy) or the weights "
                        "folder of a `facecascade train mtcnn` run; cascade: the shipped set (default) or the "
                        "weights folder of a `facecascade train cascade` run")


def _data_argument(parser) -> None:
    parser.add_argument("--data", type=Path, default=None, metavar="DIR",
                        help="the face data kit folder (cuhk80/, photos/, negatives/, wider/, wild_landmarks/); "
                        "default: $FACECASCADE_DATA, else shared/data beside the project's folder")


def _training_arguments(parser, weights: str, stages: str, quick: str) -> None:
    """The options every `facecascade train CASCADE` command takes."""
    _data_argument(parser)
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help=f"folder for samples, checkpoints, figures and {weights}")
    parser.add_argument("--stage", nargs="+", metavar="NET", default=None,
                        help=f"train only these nets ({stages}; 'all' for every net)")
    parser.add_argument("--resume", action="store_true",
                        help="continue: skip finished nets, resume a net from its last checkpoint")
    parser.add_argument("--seed", type=int, default=0, help="seed of samples, initial weights and shuffling")
    parser.add_argument("--quick", action="store_true", help=quick)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    _apply_max_pixels(args)
    handler = {"gradcheck": run_gradcheck, "detect": run_detect, "demo": run_demo,
               "evaluate": run_evaluate, "train": run_train}[args.command]
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


def output_problem(folder: Path) -> str | None:
    """What stops the results from being written into ``folder`` (a message naming it), or None.

    Checked before any work starts, without creating anything: the folder, or the nearest
    existing folder above it, must be a folder this process may write in."""
    folder = Path(folder)
    if folder.exists():
        if not folder.is_dir():
            return f"--out {folder}: is a file, not a folder"
        target = folder
    else:
        target = folder.parent
        while not target.exists() and target != target.parent:
            target = target.parent
        if not target.is_dir():
            return f"--out {folder}: cannot be created, {target} is a file"
    if not os.access(target, os.W_OK | os.X_OK):
        return f"--out {folder}: no permission to write in {target}"
    return None


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

    from pipeline.detection.batch import iter_detect
    from pipeline.data.images import list_images, subfolders

    paths = list_images(args.paths, recursive=args.recursive)
    if not args.recursive:
        skipped = subfolders(args.paths)
        if skipped:
            print(f"note: skipped {_count(len(skipped), 'subfolder')} ({', '.join(str(p) for p in skipped)}); "
                  "use --recursive to search them", file=sys.stderr)
    if not paths:
        print("error: no images found in " + ", ".join(str(p) for p in args.paths), file=sys.stderr)
        return 1
    problem = output_problem(args.out)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    try:
        detector = make_detector(args.detector, args.weights, min_face_size=args.min_face,
                                 thresholds=args.thresholds, factor=args.factor, workers=args.workers)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    used: set[str] = set()
    n_faces, errors, written, done, interrupted = 0, 0, 0, 0, False
    start = time.perf_counter()
    try:
        for result in iter_detect(detector, paths, progress=True, with_images=True):
            done += 1
            if result.ok and _write_result(result, args, used):
                n_faces += len(result.faces)
                written += 1
            else:
                errors += 1
                if not result.ok:
                    tqdm.write(f"error: {result.error}", file=sys.stderr)
    except KeyboardInterrupt:  # Ctrl-C: what was done is kept; say so instead of a traceback
        interrupted = True
    seconds = time.perf_counter() - start
    where = f"results in {args.out}/" if written else "nothing written"
    stopped = f"interrupted after {done} of {_count(len(paths), 'image')}; " if interrupted else ""
    print(f"{stopped}{written} of {_count(len(paths), 'image')} processed, {_count(n_faces, 'face')}, "
          f"{_count(errors, 'error')}, {seconds:.1f} s; {where}")
    if interrupted:
        return 130
    return 1 if errors else 0


def _write_result(result, args, used) -> bool:
    """Write one image's results of `facecascade detect` (annotated PNG, and JSON and crops when
    asked) and print its line. Returns False, after saying why on stderr, if they could not be
    written."""
    from tqdm import tqdm

    from pipeline.cli.annotate import annotate

    stem = _output_stem(Path(result.source), used)
    try:
        args.out.mkdir(parents=True, exist_ok=True)  # only once there is something to write
        annotate(result.image, result.faces).save(args.out / f"{stem}.png")
        if args.json:
            (args.out / f"{stem}.json").write_text(faces_json(result.faces))
        if args.crops:
            from pipeline.detection.align import save_crops

            save_crops(result.image, result.faces, args.out / "crops", stem)
    except OSError as exc:  # e.g. a read-only file of the same name: report it, go on
        tqdm.write(f"error: {result.source}: cannot write its results in {args.out} ({exc})", file=sys.stderr)
        return False
    tqdm.write(f"{result.source}: {_count(len(result.faces), 'face')}", file=sys.stdout)
    for note in result.notes:
        tqdm.write(f"  note: {note}", file=sys.stdout)
    return True


def run_demo(args) -> int:
    from pipeline.cli.demo import write_demo
    from pipeline.data.images import ImageError, load_image

    problem = output_problem(args.out)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    image = None
    if args.image is not None:
        try:
            image = load_image(args.image)
        except ImageError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    try:
        detector = make_detector(args.detector, args.weights)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            paths = write_demo(args.out, image=image, detector=detector)
        except OSError as exc:
            print(f"error: cannot write the figures in {args.out} ({exc})", file=sys.stderr)
            return 1
    for warning in caught:
        print(f"note: {warning.message}")
    for path in paths:
        print(f"wrote {path}")
    return 0


def make_detector(which: str, weights: str = "released", min_face_size: float = 20.0, thresholds=None,
                  factor: float | None = None, workers: int | None = None):
    """The detector named on the command line: "mtcnn" or "cascade", finding faces of at least
    min_face_size pixels; weights: MTCNN's "released", "scratch" or a weights folder (the
    Cascade-CNN has one set, trained here); thresholds (three probabilities), factor (the
    pyramid's) and workers (processes per photo) default to the detector's own. Raises
    ValueError with a message for the user when it cannot be made."""
    settings = {"min_face_size": min_face_size, "workers": workers}
    if thresholds is not None:
        settings["thresholds"] = tuple(thresholds)
    if factor is not None:
        settings["factor"] = factor
    if which == "mtcnn":
        from nets import WEIGHT_SETS, WeightsError

        from pipeline.detection.mtcnn import MTCNNDetector

        if weights not in WEIGHT_SETS and not Path(weights).is_dir():
            raise ValueError(f"--weights {weights}: not one of {', '.join(WEIGHT_SETS)}, nor a folder")
        try:
            return MTCNNDetector(weights=weights, **settings)
        except WeightsError as exc:
            raise ValueError(f"--weights {weights}: {exc}") from exc
    if weights in ("released", "shipped"):
        weights = None  # the Cascade-CNN's shipped set (trained here)
    elif not Path(weights).is_dir():
        raise ValueError(f"--weights {weights}: for the cascade, the weights folder of a "
                         "`facecascade train cascade` run (or nothing, for the shipped set)")
    try:
        from pipeline.detection.cascade import CascadeDetector
    except ImportError as exc:
        if exc.name != "pipeline.detection.cascade":
            raise  # the module exists but something it needs is broken: show the real error
        raise ValueError("the Cascade-CNN detector is not available yet") from None
    from nets import WeightsError

    try:
        return CascadeDetector(weights=weights, **settings)
    except WeightsError as exc:
        raise ValueError(f"--weights {weights}: {exc}" if weights else str(exc)) from exc
    except OSError as exc:
        raise ValueError(f"the Cascade-CNN detector cannot load its weights ({exc})") from exc


def _data_or_error(given):
    """The data kit folder by the rules of `pipeline.data.location`, or None after printing why
    it cannot be used."""
    from pipeline.data.location import MissingDataError, data_dir

    try:
        return data_dir(given)
    except MissingDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def run_evaluate(args) -> int:
    from pipeline.data.datasets import DataError
    from pipeline.evaluation.evaluate import evaluate, format_summary

    data = _data_or_error(args.data)
    if data is None:
        return 1
    problem = output_problem(args.out)
    if not problem and (args.out / "evaluation.json").exists() and not args.overwrite:
        problem = (f"--out {args.out} holds an evaluation already (evaluation.json); choose another folder "
                   "or pass --overwrite to replace it")
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    try:
        detector = make_detector(args.detector, args.weights, workers=args.workers)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        name = args.detector if args.weights == "released" else f"{args.detector} ({args.weights})"
        results = evaluate(detector, data, args.out, name=name, wider=args.wider)
    except FileNotFoundError as exc:
        print(f"error: {exc.filename}: no such file (is --data {data} the face data kit folder?)",
              file=sys.stderr)
        return 1
    except ImportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (DataError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(format_summary(results))
    if "write_error" in results:
        print(f"error: {results['write_error']}", file=sys.stderr)
        return 1
    print(f"{results['seconds']:.1f} s; results in {args.out}/ (evaluation.json, roc.png)")
    failed = sum(len(results[key].get("failed", ())) for key in ("val", "photos", "negatives", "wider", "wild_landmarks"))
    return 1 if failed else 0


def run_train(args) -> int:
    from pipeline.training.loop import OutputInUse

    if args.cascade == "mtcnn":
        from pipeline.training.train_mtcnn import STAGES, train_mtcnn as train
    else:
        from pipeline.training.train_cascade import STAGES, train_cascade as train

    stages = STAGES if not args.stage or "all" in args.stage else tuple(args.stage)
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        print(f"error: --stage: unknown net(s) {', '.join(unknown)}; choose from {' '.join(STAGES)} or all",
              file=sys.stderr)
        return 2
    data = _data_or_error(args.data)
    if data is None:
        return 1
    start = time.perf_counter()
    try:
        paths = train(data, args.out, stages, seed=args.seed, resume=args.resume, quick=args.quick)
    except KeyboardInterrupt:
        return 130
    except (FileExistsError, FileNotFoundError, ValueError, OutputInUse) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"trained {len(paths)} net(s) in {(time.perf_counter() - start) / 60:.1f} min: "
          + ", ".join(str(p) for p in paths))
    if args.quick:
        print("note: --quick is a smoke test of the training procedure; its weights are not meant to find faces "
              "(the full run trains on every training photo)")
    return 0
