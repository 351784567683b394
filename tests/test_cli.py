"""The `facecascade` command line: gradcheck, detect (with bad files in a batch) and demo."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from pipeline import __version__
from pipeline.cli.main import main


@pytest.fixture(scope="module")
def astronaut():
    return pytest.importorskip("skimage.data").astronaut()


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert __version__ in capsys.readouterr().out
    assert main([]) == 0
    out = capsys.readouterr().out
    for command in ("gradcheck", "detect", "demo"):
        assert command in out


def test_python_dash_m_pipeline_runs():
    done = subprocess.run([sys.executable, "-m", "pipeline", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and __version__ in done.stdout


def test_gradcheck_prints_a_passing_table(capsys):
    assert main(["gradcheck"]) == 0
    out = capsys.readouterr().out
    for op in ("conv", "maxpool", "prelu", "relu", "linear", "softmax", "lrn", "spp", "dropout",
               "softmax_cross_entropy", "euclidean_loss"):
        assert f"\n{op} " in out
    assert "0 failed" in out and "FAIL" not in out


def test_detect_goes_on_after_bad_files(tmp_path, astronaut, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(astronaut).save(photos / "astronaut.png")
    Image.fromarray(np.full((50, 60), 200, np.uint8)).save(photos / "blank.jpg")
    (photos / "empty.jpg").write_bytes(b"")
    (photos / "broken.png").write_bytes((photos / "astronaut.png").read_bytes()[:2000])
    (photos / "notes.jpg").write_text("a text file with an image's name")
    out_dir = tmp_path / "out"
    code = main(["detect", str(photos), "--out", str(out_dir), "--json"])
    captured = capsys.readouterr()
    assert code == 1  # some files failed
    for name in ("empty.jpg", "broken.png", "notes.jpg"):
        assert name in captured.err
    assert len([line for line in captured.err.splitlines() if line.startswith("error:")]) == 3
    assert "2 of 5 images processed, 1 face, 3 errors" in captured.out
    faces = json.loads((out_dir / "astronaut.json").read_text())
    assert len(faces) == 1
    assert set(faces[0]) == {"box", "score", "landmarks"}
    assert len(faces[0]["box"]) == 4 and len(faces[0]["landmarks"]) == 5
    assert json.loads((out_dir / "blank.json").read_text()) == []
    annotated = Image.open(out_dir / "astronaut.png")
    assert annotated.size == (512, 512)


def test_detect_missing_file_fails_clearly(tmp_path, capsys):
    code = main(["detect", str(tmp_path / "nowhere.jpg"), "--out", str(tmp_path / "out")])
    assert code == 1
    captured = capsys.readouterr()
    assert "nowhere.jpg" in captured.err
    assert not (tmp_path / "out").exists()  # no empty output folder
    assert "nothing written" in captured.out and "results in" not in captured.out


@pytest.mark.parametrize("option, value, expected", [
    ("--min-face", "0", "argument --min-face: expected a number of pixels > 0, e.g. 20; got 0"),
    ("--min-face", "abc", "argument --min-face: expected a number of pixels > 0, e.g. 20; got 'abc'"),
    ("--factor", "1.5", "argument --factor: expected a number between 0 and 1 (exclusive)"),
    ("--thresholds", "0.6 x 0.7", "argument --thresholds: expected three probabilities between 0 and 1"),
    ("--thresholds", "0.6 1.7 0.7", "argument --thresholds: expected probabilities between 0 and 1; got 1.7"),
    ("--workers", "0", "argument --workers: expected a whole number of processes >= 1, e.g. 2; got 0"),
    ("--workers", "1.5", "argument --workers: expected a whole number of processes >= 1, e.g. 2; got '1.5'"),
])
def test_detect_refuses_bad_options_by_name(tmp_path, capsys, option, value, expected):
    with pytest.raises(SystemExit):
        main(["detect", str(tmp_path), option, *value.split()])
    err = capsys.readouterr().err
    assert expected in err
    assert "_positive_float" not in err and "invalid" not in err  # no internal function names


def test_detect_takes_thresholds_and_factor(tmp_path, astronaut, capsys):
    Image.fromarray(astronaut).save(tmp_path / "astronaut.png")
    out_dir = tmp_path / "out"
    code = main(["detect", str(tmp_path / "astronaut.png"), "--out", str(out_dir), "--json",
                 "--thresholds", "0.6", "0.7", "0.999999", "--factor", "0.6", "--min-face", "40"])
    assert code == 0
    assert "0 faces" in capsys.readouterr().out  # O-Net's threshold is out of reach
    assert json.loads((out_dir / "astronaut.json").read_text()) == []
    from pipeline.cli.main import make_detector

    det = make_detector("mtcnn", min_face_size=40, thresholds=[0.5, 0.6, 0.7], factor=0.6, workers=3)
    assert (det.min_face_size, det.thresholds, det.factor, det.runner.workers) == (40, (0.5, 0.6, 0.7), 0.6, 3)


def test_detect_on_one_worker_finds_what_the_default_finds(tmp_path, astronaut, capsys):
    Image.fromarray(astronaut).save(tmp_path / "astronaut.png")
    found = []
    for extra in ([], ["--workers", "1"]):
        out_dir = tmp_path / f"out{len(extra)}"
        assert main(["detect", str(tmp_path / "astronaut.png"), "--out", str(out_dir), "--json", *extra]) == 0
        found.append(json.loads((out_dir / "astronaut.json").read_text()))
    assert len(found[0]) == len(found[1]) == 1
    assert found[0][0]["box"] == pytest.approx(found[1][0]["box"], rel=1e-5)


def test_weights_option_names_what_is_wrong(tmp_path, capsys):
    from pipeline.cli.main import make_detector

    with pytest.raises(ValueError, match="--weights scratch: for the cascade, the weights folder of a"):
        make_detector("cascade", "scratch")
    with pytest.raises(ValueError, match=r"--weights .*cascade_net12.npz: Cascade-CNN weights not found"):
        make_detector("cascade", str(tmp_path))  # a folder without a training run's files
    with pytest.raises(ValueError, match=r"--weights .*mtcnn_pnet.npz: weights file not found"):
        make_detector("mtcnn", str(tmp_path))  # a folder without a training run's files
    Image.fromarray(np.zeros((30, 30, 3), np.uint8)).save(tmp_path / "blank.png")
    capsys.readouterr()
    assert main(["detect", str(tmp_path / "blank.png"), "--weights", "nonsense", "--out", str(tmp_path / "o")]) == 1
    assert "--weights nonsense: not one of released, scratch, nor a folder" in capsys.readouterr().err


def test_cascade_weights_folder_of_a_training_run(tmp_path):
    """--weights FOLDER loads a `facecascade train cascade` run's files, as for MTCNN."""
    import shutil

    from nets.cascade_weights import WEIGHTS_DIR
    from pipeline.cli.main import make_detector

    for path in WEIGHTS_DIR.glob("cascade_*.npz"):
        shutil.copy(path, tmp_path / path.name)
    detector = make_detector("cascade", str(tmp_path))
    assert not detector.shipped
    assert detector.thresholds == make_detector("cascade").thresholds


def test_detect_reports_skipped_subfolders_and_searches_them_with_recursive(tmp_path, capsys):
    photos = tmp_path / "photos"
    (photos / "b" / "deeper").mkdir(parents=True)
    (photos / "a").mkdir()
    (photos / ".hidden").mkdir()
    blank = Image.fromarray(np.full((30, 30), 200, np.uint8))
    blank.save(photos / "top.png")
    blank.save(photos / "a" / "one.png")
    blank.save(photos / "b" / "deeper" / "two.png")
    blank.save(photos / ".hidden" / "no.png")
    assert main(["detect", str(photos), "--out", str(tmp_path / "flat")]) == 0
    captured = capsys.readouterr()
    assert "note: skipped 2 subfolders" in captured.err and "--recursive" in captured.err
    assert "1 of 1 image processed" in captured.out
    assert main(["detect", str(photos), "--recursive", "--out", str(tmp_path / "deep")]) == 0
    captured = capsys.readouterr()
    assert "skipped" not in captured.err
    assert "3 of 3 images processed" in captured.out
    assert sorted(p.name for p in (tmp_path / "deep").iterdir()) == ["one.png", "top.png", "two.png"]


def test_detect_says_when_no_pyramid_level_fits(tmp_path, capsys):
    Image.fromarray(np.full((30, 40), 200, np.uint8)).save(tmp_path / "small.png")
    assert main(["detect", str(tmp_path / "small.png"), "--out", str(tmp_path / "out"), "--min-face", "50"]) == 0
    out = capsys.readouterr().out
    assert "small.png: 0 faces" in out
    assert "note: no pyramid level fits: the image is 40 x 30 px" in out


def test_demo_on_the_users_photo(tmp_path, astronaut, capsys):
    Image.fromarray(astronaut).save(tmp_path / "mine.png")
    assert main(["demo", str(tmp_path / "mine.png"), "--out", str(tmp_path / "demo")]) == 0
    faces = Image.open(tmp_path / "demo" / "0_faces.png")
    assert faces.size == (512, 512)  # the user's photo, not the sample
    assert "wrote" in capsys.readouterr().out
    assert main(["demo", str(tmp_path / "missing.png"), "--out", str(tmp_path / "demo2")]) == 1
    assert "missing.png: no such file" in capsys.readouterr().err
    assert not (tmp_path / "demo2").exists()


def test_demo_writes_every_stage_figure(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    written = sorted(p.name for p in (tmp_path / "demo").iterdir())
    assert written == ["0_faces.png", "1_pyramid.png", "2_stage1_heatmaps.png", "3_stage1_nms.png", "4_stage2.png",
                       "5_stage3.png", "6_stages.png", "7_counts.png"]
    assert all((tmp_path / "demo" / name).stat().st_size > 1000 for name in written)


def test_train_mtcnn_quick_writes_pnet_weights(tmp_path):
    from paths import require_data

    from nets import PNet
    from nets.weights import load_weights
    from pipeline.cli.main import main

    data = require_data("cuhk80", "train.txt").parents[1]
    assert main(["train", "mtcnn", "--data", str(data), "--out", str(tmp_path), "--quick", "--stage", "pnet"]) == 0
    meta = load_weights(PNet(landmarks=True), tmp_path / "weights" / "mtcnn_pnet.npz")
    assert 0.0 <= float(meta["threshold"]) <= 1.0
    assert (tmp_path / "pnet" / "curves.png").is_file()
    # a finished stage is skipped on --resume
    assert main(["train", "mtcnn", "--data", str(data), "--out", str(tmp_path), "--quick", "--stage", "pnet", "--resume"]) == 0


@pytest.mark.slow
def test_train_mtcnn_onet_stage_mines_with_the_earlier_nets_and_sets_its_operating_threshold(tmp_path):
    """O-Net's quick stage on top of the shipped scratch P-Net and R-Net: it mines their windows,
    trains, and stores the threshold chosen on the validation photos."""
    import shutil

    from paths import require_data

    from nets.mtcnn_weights import scratch_path
    from nets.weights import WEIGHTS_DIR, load_weights
    from nets import ONet
    from pipeline.cli.main import main
    from pipeline.detection.mtcnn import MTCNNDetector

    data = require_data("cuhk80", "train.txt").parents[1]
    (tmp_path / "weights").mkdir()
    for name in ("pnet", "rnet"):
        if not scratch_path(name, WEIGHTS_DIR).is_file():
            pytest.skip("the scratch MTCNN weights are not in nets/weights/ yet")
        shutil.copy(scratch_path(name, WEIGHTS_DIR), scratch_path(name, tmp_path / "weights"))
    assert main(["train", "mtcnn", "--data", str(data), "--out", str(tmp_path), "--quick", "--stage", "all",
                 "--resume"]) == 0
    meta = load_weights(ONet(landmarks=True), scratch_path("onet", tmp_path / "weights"))
    assert 0.0 < float(meta["operating_threshold"]) < 1.0 and 0.0 < float(meta["threshold"]) < 1.0
    cached = sorted((tmp_path / "samples").glob("onet-train-*.npz"))  # named by a key of the recipe and seed
    assert len(cached) == 1
    kinds = np.load(cached[0])["label.kind"]
    assert set(np.unique(kinds)) == {0, 1, 2, 3}
    detector = MTCNNDetector(weights=tmp_path / "weights")
    assert detector.thresholds[2] == pytest.approx(float(meta["operating_threshold"]))
    assert main(["detect", str(data / "photos"), "--weights", str(tmp_path / "weights"),
                 "--out", str(tmp_path / "found")]) == 0


def test_train_refuses_an_unknown_stage(tmp_path, capsys):
    from pipeline.cli.main import main

    assert main(["train", "cascade", "--data", str(tmp_path), "--out", str(tmp_path), "--stage", "net99"]) == 2
    assert "net99" in capsys.readouterr().err


def test_an_image_over_the_pixel_limit_is_reported_and_the_batch_goes_on(tmp_path, monkeypatch, capsys):
    """Pillow refuses images over twice MAX_IMAGE_PIXELS (a decompression-bomb guard); detect
    names the file, says how to allow it, and goes on; --max-pixels raises the limit."""
    from PIL import Image as PILImage

    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 1000)  # refuses over 2,000 pixels
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.zeros((100, 120, 3), np.uint8)).save(folder / "big.png")
    Image.fromarray(np.zeros((30, 30, 3), np.uint8)).save(folder / "small.png")
    assert main(["detect", str(folder), "--out", str(tmp_path / "out"), "--workers", "1"]) == 1
    captured = capsys.readouterr()
    assert "big.png: image too large" in captured.err and "--max-pixels" in captured.err
    assert "1 of 2 images processed" in captured.out and (tmp_path / "out" / "small.png").is_file()
    assert main(["detect", str(folder), "--out", str(tmp_path / "out2"), "--workers", "1",
                 "--max-pixels", "12000"]) == 0
    assert "2 of 2 images processed" in capsys.readouterr().out


def test_out_that_cannot_hold_results_is_refused_before_any_work(tmp_path, capsys):
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(image)
    a_file = tmp_path / "results.txt"
    a_file.write_text("mine")
    for command in (["detect", str(image)], ["demo", str(image)]):
        assert main([*command, "--out", str(a_file)]) == 1
        assert f"--out {a_file}: is a file, not a folder" in capsys.readouterr().err
        assert main([*command, "--out", str(a_file / "sub")]) == 1
        assert f"cannot be created, {a_file} is a file" in capsys.readouterr().err
    assert a_file.read_text() == "mine"


def test_detect_reports_a_result_it_cannot_write_and_goes_on(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a", "b"):
        Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(folder / f"{name}.png")
    out = tmp_path / "out"
    (out / "a.png").mkdir(parents=True)  # a folder where a's annotated image would go
    assert main(["detect", str(folder), "--out", str(out), "--workers", "1"]) == 1
    captured = capsys.readouterr()
    assert "a.png: cannot write its results in" in captured.err
    assert "1 of 2 images processed" in captured.out and (out / "b.png").is_file()


def test_evaluate_refuses_to_replace_an_evaluation(tmp_path, capsys):
    out = tmp_path / "eval"
    out.mkdir()
    (out / "evaluation.json").write_text("{}")
    assert main(["evaluate", "--data", str(tmp_path), "--out", str(out)]) == 1
    assert "holds an evaluation already (evaluation.json); choose another folder or pass --overwrite" \
        in capsys.readouterr().err
    assert (out / "evaluation.json").read_text() == "{}"


def test_ctrl_c_in_detect_keeps_what_was_done_and_prints_the_summary(tmp_path, monkeypatch, capsys):
    import pipeline.cli.main as cli

    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a", "b", "c"):
        Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(folder / f"{name}.png")
    real, calls = cli._write_result, []

    def one_then_interrupt(result, *rest):
        calls.append(result)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(result, *rest)

    monkeypatch.setattr(cli, "_write_result", one_then_interrupt)
    assert main(["detect", str(folder), "--out", str(tmp_path / "out"), "--workers", "1"]) == 130
    captured = capsys.readouterr()
    assert "interrupted after 2 of 3 images; 1 of 3 images processed" in captured.out
    assert "Traceback" not in captured.err and (tmp_path / "out" / "a.png").is_file()
