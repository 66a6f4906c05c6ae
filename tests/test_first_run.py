"""What a first-time user meets: every message through the CLI itself (one line, exit 2),
the defaults, the option names shared across commands, and the README's predict path
(prepare media -> train -> predict) from nothing but generated clips."""

from __future__ import annotations

import argparse
import csv
import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from selfcross.cli import build_parser, main
from selfcross.folds import layout, read_fold
from selfcross.synthetic import make_synthetic

SR = 16_000
REPO = Path(__file__).resolve().parents[1]


def tone(seconds: float, f0: float, seed: int) -> np.ndarray:
    """A speech-like harmonic tone (no espeak needed)."""
    t = np.arange(int(SR * seconds)) / SR
    x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 4))
    env = 0.5 * (1 - np.cos(2 * np.pi * 3.0 * t))
    return (0.2 * x * env + 0.003 * np.random.default_rng(seed).standard_normal(len(t))).astype(np.float32)


def one_error_line(capsys: pytest.CaptureFixture[str], command: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"selfcross {command}: error: ")
    return err[0]


@pytest.fixture(scope="module")
def syn_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthetic(tmp_path_factory.mktemp("syn") / "data", "small", seed=0, n_folds=2)


@pytest.fixture
def audio_only_fold(syn_root: Path, tmp_path: Path) -> Path:
    """fold01 of the synthetic benchmark with its video and text files removed."""
    import shutil

    fold = shutil.copytree(syn_root / "fold01", tmp_path / "audio_only" / "fold01")
    for p in fold.iterdir():
        if re.search(r"_(video|video_seqN|nlp_trans|text)\.npy$", p.name) or p.name == layout.EMBEDDING_FILE:
            p.unlink()
    return fold


# ------------------------------------------------------------------------------ train / data


def test_train_on_a_data_root_names_the_folds(syn_root, tmp_path, capsys):
    assert main(["train", "--data", str(syn_root), "--out", str(tmp_path / "r")]) == 2
    line = one_error_line(capsys, "train")
    assert f"pass {syn_root / 'fold01'} (folds: fold01..fold02)" in line
    assert not (tmp_path / "r").exists()


def test_requested_modality_missing_names_what_the_fold_has(audio_only_fold, tmp_path, capsys):
    args = ["train", "--data", str(audio_only_fold), "--modalities", "av", "--out", str(tmp_path / "r")]
    assert main(args) == 2
    line = one_error_line(capsys, "train")
    assert "train_video.npy: file is missing" in line and "this fold has: a)" in line


@pytest.mark.slow
def test_train_defaults_to_the_folds_modalities_and_a_synthetic_run_cannot_predict(
    audio_only_fold, tmp_path, capsys
):
    run = tmp_path / "run"
    assert main(["train", "--data", str(audio_only_fold), "--out", str(run), "--max-epochs", "1",
                 "--no-progress", "--threads", "1"]) == 0
    assert json.loads((run / "config.json").read_text())["model"]["modalities"] == ["audio"]
    capsys.readouterr()
    clip = tmp_path / "clip.wav"
    sf.write(clip, tone(1.0, 180, 0), SR)
    assert main(["predict", "--run", str(run), "--audio", str(clip)]) == 2
    line = one_error_line(capsys, "predict")
    assert "this run was trained on synthetic or pre-extracted arrays with no feature settings" in line
    assert "cannot extract features from raw clips" in line and "prepare-manifest" in line


def test_validate_data_accepts_a_fold_folder_of_any_name(syn_root, tmp_path, capsys):
    import shutil

    fold = shutil.copytree(syn_root / "fold02", tmp_path / "my_session")
    assert main(["validate-data", str(fold)]) == 0
    assert "ok: 1 fold(s) valid" in capsys.readouterr().out
    (tmp_path / "empty").mkdir()
    assert main(["validate-data", str(tmp_path / "empty")]) == 2
    line = one_error_line(capsys, "validate-data")
    assert "holds no fold folders" in line and "not a fold folder itself (no train_label.npy)" in line


def test_zero_video_drop_only_when_video_is_read(syn_root, caplog):
    with caplog.at_level(logging.WARNING, logger="selfcross.folds"):
        without_video = read_fold(syn_root / "fold01", "at", check_values=False)
    assert sum(s.n_dropped for s in without_video.splits.values()) == 0
    assert "zero video length" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="selfcross.folds"):
        with_video = read_fold(syn_root / "fold01", "atv", check_values=False)
    dropped = sum(s.n_dropped for s in with_video.splits.values())
    assert dropped > 0
    kept = sum(len(s) for s in with_video.splits.values())
    assert sum(len(s) for s in without_video.splits.values()) == kept + dropped
    assert "the authors' loader drops them too" in caplog.text


# --------------------------------------------------------------------------- CLI consistency


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


PROGRESS_COMMANDS = ("train", "grid", "demo", "prepare-iemocap", "prepare-manifest", "prepare")


@pytest.mark.parametrize("command", PROGRESS_COMMANDS)
def test_one_name_switches_progress_off(command):
    sub = _subparsers(build_parser())[command]
    helptext = sub.format_help()
    assert "--no-progress" in helptext and "--quiet" not in helptext
    opts = {a.dest: a for a in sub._actions}
    assert opts["no_progress"].default is False
    quiet = next(a for a in sub._actions if "--quiet" in a.option_strings)
    assert quiet.dest == "no_progress" and quiet.help == argparse.SUPPRESS


def test_report_and_demo_describe_themselves_and_show_defaults():
    subs = _subparsers(build_parser())
    for name in ("report", "demo", "grid"):
        assert subs[name].description and len(subs[name].description) > 80, name
    report_help = subs["report"].format_help()
    assert "default: results.sqlite" in report_help
    preset = next(a for a in subs["grid"]._actions if "--preset" in a.option_strings)
    assert preset.help and "improved" in preset.help
    demo_out = next(a for a in subs["demo"]._actions if "--out" in a.option_strings).default
    make_default = re.search(r"^DEMO_OUT \?= (\S+)$", (REPO / "Makefile").read_text(), re.M).group(1)
    assert demo_out == make_default


def test_demo_folds_and_seeds_are_ranges_as_in_grid(tmp_path, monkeypatch, capsys):
    import selfcross.demo as demo
    import selfcross.synthetic
    from selfcross.errors import ConfigError

    seen = {}

    def fake_grid(data, **kwargs):
        seen.update(folds=kwargs["folds"], seeds=kwargs["seeds"])
        raise ConfigError("stopped after planning")

    fake_synthetic = lambda *a, **k: seen.update(n_folds=k["n_folds"])  # noqa: E731
    monkeypatch.setattr(selfcross.synthetic, "make_synthetic", fake_synthetic)
    monkeypatch.setattr(demo, "run_grid", fake_grid)
    args = ["demo", "--out", str(tmp_path / "d"), "--folds", "2-3", "--seeds", "1,4", "--no-progress"]
    assert main(args) == 2
    assert seen == {"n_folds": 3, "folds": [2, 3], "seeds": [1, 4]}
    capsys.readouterr()
    assert main(["demo", "--out", str(tmp_path / "d"), "--folds", "3-1"]) == 2
    assert "--folds '3-1'" in one_error_line(capsys, "demo")


# --------------------------------------------------------------------------- preparation


def _ravdess_tree(root: Path, actors: int) -> Path:
    for a in range(1, actors + 1):
        for emo in ("01", "05"):
            for st in ("01", "02"):
                d = root / f"Actor_{a:02d}"
                d.mkdir(parents=True, exist_ok=True)
                sf.write(d / f"03-01-{emo}-01-{st}-01-{a:02d}.wav", tone(0.5, 150 + 30 * int(emo), a), SR)
    return root


def test_prepare_ravdess_with_few_actors_suggests_folds_and_leaves_nothing(tmp_path, capsys):
    src = _ravdess_tree(tmp_path / "ravdess", actors=3)
    out = tmp_path / "prepared"
    assert main(["prepare", "ravdess", str(src), str(out), "--video-encoder", "none", "--no-progress"]) == 2
    line = one_error_line(capsys, "prepare")
    assert "3 speaker group(s) cannot make 6 speaker-independent folds: use --folds 3 or fewer" in line
    assert not out.exists()


def _manifest(tmp_path: Path, labels: list[str], speakers: int = 4) -> Path:
    clips = tmp_path / "clips"
    clips.mkdir()
    rows = []
    for i, label in enumerate(labels):
        sf.write(clips / f"u{i}.wav", tone(0.5, 140 + 10 * (i % 5), i), SR)
        rows.append([f"u{i}", label, f"spk{i % speakers}", f"clips/u{i}.wav"])
    path = tmp_path / "manifest.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([["id", "label", "speaker", "audio"], *rows])
    return path


def test_a_typo_label_is_warned_about_and_listed_in_the_report(tmp_path, caplog, capsys):
    labels = ["neutral", "calm", "happy", "sad"] * 6 + ["joyful"]
    man = _manifest(tmp_path, labels)
    with caplog.at_level(logging.WARNING, logger="selfcross.folds"):
        rc = main(["prepare-manifest", str(man), str(tmp_path / "root"), "--folds", "2",
                   "--max-audio-frames", "60", "--no-progress"])
    assert rc == 0
    assert "'joyful' (1)" in caplog.text and "not in the ravdess8 class set" in caplog.text
    report = (tmp_path / "root" / "prepare_report.md").read_text()
    assert "**Warning:** class(es) with fewer than 3 items: 'joyful' (1)" in report
    assert "label(s) 'joyful' are not in the ravdess8 class set" in report


def test_a_clean_manifest_gives_no_label_warning(tmp_path, caplog):
    man = _manifest(tmp_path, ["happy", "sad"] * 8)
    with caplog.at_level(logging.WARNING, logger="selfcross.folds"):
        assert main(["prepare-manifest", str(man), str(tmp_path / "root"), "--folds", "2",
                     "--max-audio-frames", "60", "--no-progress"]) == 0
    assert "Warning" not in (tmp_path / "root" / "prepare_report.md").read_text()
    assert "fewer than" not in caplog.text and "class set" not in caplog.text


def test_prepare_manifest_missing_file_mentions_skip_missing(tmp_path, capsys):
    man = _manifest(tmp_path, ["happy", "sad"] * 4)
    (tmp_path / "clips" / "u3.wav").unlink()
    assert main(["prepare-manifest", str(man), str(tmp_path / "root"), "--no-progress"]) == 2
    line = one_error_line(capsys, "prepare-manifest")
    assert "u3.wav does not exist" in line and "--skip-missing leaves such rows out" in line


def test_extractor_is_warmed_up_before_the_progress_bar(tmp_path, capsys):
    man = _manifest(tmp_path, ["happy", "sad"] * 4)
    assert main(["prepare-manifest", str(man), str(tmp_path / "root"), "--folds", "2",
                 "--max-audio-frames", "60"]) == 0
    err = capsys.readouterr().err
    loading = err.index("audio features: loading the extractor (one-time start-up) ...")
    assert loading < err.index("audio features:", loading + 1)


# --------------------------------------------------------------- the README's predict path


@pytest.mark.slow
def test_prepare_train_predict_from_clips_and_truncated_wav(tmp_path, capsys):
    """The README's path from a fresh clone: own clips -> manifest -> prepare -> train -> predict."""
    labels = (["happy"] * 4 + ["sad"] * 4) * 3  # every speaker (i % 4) has both classes
    man = _manifest(tmp_path, labels)
    root = tmp_path / "root"
    assert main(["prepare-manifest", str(man), str(root), "--folds", "2", "--max-audio-frames", "60",
                 "--no-progress"]) == 0
    run = tmp_path / "run"
    assert main(["train", "--data", str(root / "fold01"), "--out", str(run), "--max-epochs", "1",
                 "--no-progress", "--threads", "1"]) == 0
    capsys.readouterr()
    clip = tmp_path / "clips" / "u0.wav"
    assert main(["predict", "--run", str(run), "--audio", str(clip), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert set(got["probabilities"]) == {"happy", "sad"}

    truncated = tmp_path / "half.wav"
    data = clip.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    assert main(["predict", "--run", str(run), "--audio", str(truncated)]) == 2
    line = one_error_line(capsys, "predict")
    assert "half.wav: truncated WAV: the header declares" in line

    clips_csv = tmp_path / "new.csv"
    clips_csv.write_text(f"id,audio\nok,{clip}\ngone,{tmp_path / 'nope.wav'}\n")
    args = ["predict", "--run", str(run), "--manifest", str(clips_csv), "--out", str(tmp_path / "p.csv")]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert "1/2 clips predicted" in captured.out
    assert "gone: line 3:" in captured.err and "no such audio file" in captured.err
    assert "1 row(s) failed" in captured.err


# ------------------------------------------------------------------------------ the report


def _report_db(path: Path, sets: tuple[str, ...], folds: int, seeds: int) -> Path:
    """Self and cross on ``sets``; self right on 75% of 60 utterances, cross on 65%."""
    import zlib

    from selfcross.experiments.store import Predictions, ResultsStore, RunKey

    with ResultsStore.open(path, lock=True) as s:
        for fold in range(1, folds + 1):
            y = np.random.default_rng(fold).integers(0, 4, 60)
            for seed in range(1, seeds + 1):
                for mods in sets:
                    for kind, skill in (("self", 0.75), ("cross", 0.65)):
                        rng = np.random.default_rng(zlib.crc32(f"{kind}{mods}{fold}{seed}".encode()))
                        pred = np.where(rng.random(60) < skill, y, (y + rng.integers(1, 4, 60)) % 4)
                        acc = float(np.mean(pred == y))
                        bal = float(np.mean([np.mean(pred[y == c] == c) for c in range(4)]))
                        rid = s.record_started(RunKey(kind, mods, "stat", "paper", fold, seed), {}, "h",
                                               f"fp{fold}", "/r")
                        probs = np.full((60, 4), 0.25)
                        s.record_done(rid, {"dev": {"accuracy": acc},
                                            "test": {"accuracy": acc, "balanced_accuracy": bal},
                                            "best_epoch": 1, "epochs_run": 1},
                                      Predictions(y, pred, probs, None), ["a", "b", "c", "d"], 1.0)
    return path


def test_verdict_one_line_per_set_and_metric_power_once_disagreement_plain(tmp_path):
    from selfcross.analysis.report import make_report

    db = _report_db(tmp_path / "r.sqlite", ("av", "at", "vt", "atv"), folds=3, seeds=2)
    make_report(db, tmp_path / "rep")
    summary = (tmp_path / "rep" / "summary.txt").read_text().splitlines()
    verdicts = [ln for ln in summary if ln.startswith("- ")]
    assert len(verdicts) == 8  # 4 modality sets x 2 metrics, one line each
    assert all(len(ln) < 240 for ln in verdicts)
    assert sum("Power:" in ln for ln in summary) == 1
    assert not any("Holm's correction" in ln or "run more folds" in ln for ln in verdicts)
    # 6 pairs x 60 utterances, 10 points apart: McNemar sees it, the signed-rank test cannot
    mcnemar = [ln for ln in verdicts if "McNemar (p = " in ln]
    assert mcnemar and all(" accuracy: no significant difference" in ln and "the tests disagree" in ln
                           for ln in mcnemar)
    assert not any("McNemar" in ln for ln in verdicts if "balanced accuracy" in ln)


def test_figures_name_the_data_count_rows_and_centre_bars(tmp_path):
    from selfcross.analysis import plots
    from selfcross.analysis.report import _root_name

    root = tmp_path / "ravdess-prepared"
    root.mkdir()
    (root / "prepare_report.md").write_text("# ravdess preparation\n\nSource: x\n")
    assert _root_name(root) == "RAVDESS"
    (root / "prepare_report.md").write_text("# Manifest preparation\n")
    assert _root_name(root) == "ravdess-prepared"
    (root / "synthetic.json").write_text("{}")
    assert _root_name(root) == "synthetic benchmark"

    cells = {("self", "a"): {"accuracy": (0.4, 0.02, 3)}, ("self", "av"): {"accuracy": (0.6, 0.02, 3)},
             ("cross", "av"): {"accuracy": (0.5, 0.02, 3)}}
    captured = {}
    real_save = plots._save

    def keep(fig, path):
        captured[path.name] = fig
        return real_save(fig, path)

    import pytest as _pytest

    with _pytest.MonkeyPatch.context() as mp:
        mp.setattr(plots, "_save", keep)
        plots.bar_chart(cells, ["accuracy"], {}, tmp_path / "scores.png", title="RAVDESS, 4 classes",
                        chance=0.25)
        plots.confusion_plot(np.array([[3, 0], [10, 290]]), ["rare", "common"], "t", tmp_path / "cm.png")
    ax = captured["scores.png"].axes[0]
    centres = sorted((round(b.get_x() + b.get_width() / 2, 6)) for b in ax.patches)
    assert centres[0] == 0.0  # the lone uni-modal bar sits on its tick
    assert [round(c, 6) for c in centres[1:]] == [0.8, 1.2]  # the two A+V bars straddle theirs
    assert any(ln.get_linestyle() == "--" and ln.get_ydata()[0] == 25.0 for ln in ax.lines)
    rows = [t.get_text() for t in captured["cm.png"].axes[0].get_yticklabels()]
    assert rows == ["rare (n=3)", "common (n=300)"]
