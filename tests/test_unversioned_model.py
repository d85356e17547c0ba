"""A classifier that cannot say which model it is is refused (issue 20 part 6): a file with its last 100 bytes
cut (a half-copied SD card) used to run with a warning as version "unversioned". Now the device, evaluate and
bench refuse it in one line naming the file, unless told --allow-unversioned (or allow_unversioned = true in
the edge config). The real shipped int8 model, cut or stripped as a user's copy would be."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from emo7ion.cli import main
from emo7ion.core import provenance
from emo7ion.core.runtime import EmotionClassifier, ModelError
from emo7ion.core.service.resources import shipped_model
from helpers import write_split

EXE = Path(sys.executable).parent / "emo7ion"


def damaged(tmp_path: Path, how: str) -> Path:
    """The shipped int8 model as a user might hold it: cut short, stripped of provenance, or with a field lost."""
    data = shipped_model().read_bytes()
    target = tmp_path / f"{how}.tflite"
    if how == "cut":
        target.write_bytes(data[:-100])
    elif how == "stripped":
        target.write_bytes(provenance.strip(data))
    elif how == "no-version":
        meta = {key: value for key, value in provenance.read(data).items() if key != "version"}
        target.write_bytes(provenance.embed(data, meta))
    elif how == "schema-9":
        target.write_bytes(provenance.embed(data, {**provenance.read(data), "schema": 9}))
    return target


@pytest.mark.parametrize("how, reason", [("cut", "cut short"), ("stripped", "carries no provenance"),
                                         ("no-version", "lacks version"), ("schema-9", "schema 9")])
def test_a_classifier_without_whole_provenance_is_refused_unless_allowed(tmp_path, caplog, how, reason):
    model = damaged(tmp_path, how)
    with pytest.raises(ModelError) as refused:
        EmotionClassifier(model)
    assert str(model) in str(refused.value) and reason in str(refused.value)
    assert "--allow-unversioned" in str(refused.value)
    with caplog.at_level(logging.WARNING):
        allowed = EmotionClassifier(model, allow_unversioned=True)
    assert reason in caplog.text and str(model) in caplog.text
    faces = np.random.default_rng(0).random((3, 48, 48, 1), dtype=np.float32)
    np.testing.assert_array_equal(allowed.predict(faces), EmotionClassifier(shipped_model()).predict(faces))
    if how in ("cut", "stripped", "no-version"):
        assert allowed.model_id["version"] == "unversioned"


def test_the_shipped_model_passes_with_its_version(caplog):
    with caplog.at_level(logging.WARNING):
        classifier = EmotionClassifier(shipped_model())
    assert classifier.model_id["version"].startswith("emo7ion-edge-") and classifier.model_id["variant"] == "int8"
    assert provenance.unversioned(shipped_model().read_bytes()) is None
    assert "provenance" not in caplog.text


def frames_folder(tmp_path: Path) -> Path:
    """A few plain frames (no faces needed: the classifier is judged before the first frame)."""
    folder = tmp_path / "frames"
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.jpg"), rng.integers(0, 255, (240, 320, 3), dtype=np.uint8))
    return folder


def edge_run(tmp_path: Path, model: Path, *extra) -> subprocess.CompletedProcess:
    args = ["edge", "run", "--venue", "lobby", "--camera", "cam1", "--source", frames_folder(tmp_path),
            "--model", model, "--out", tmp_path / "windows.jsonl", "--outbox", tmp_path / "outbox.sqlite",
            "--window", "1", "--fps", "10", "--duration", "2.5", *extra]
    return subprocess.run([str(EXE), *map(str, args)], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={**os.environ, "EMO7ION_LOG_LEVEL": "WARNING"})


def test_edge_run_refuses_a_cut_model_in_one_line_naming_it_and_runs_it_when_allowed(tmp_path):
    cut = damaged(tmp_path, "cut")
    refused = edge_run(tmp_path, cut)
    assert refused.returncode == 2, refused.stderr
    assert "Traceback" not in refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert lines[-1].startswith("emo7ion edge: error: ") and str(cut) in lines[-1], refused.stderr
    assert not (tmp_path / "windows.jsonl").exists()

    allowed = edge_run(tmp_path, cut, "--allow-unversioned")
    assert allowed.returncode == 0, allowed.stderr
    assert "cut short" in allowed.stderr and "running it as version 'unversioned'" in allowed.stderr
    windows = [json.loads(line) for line in (tmp_path / "windows.jsonl").read_text().splitlines()]
    assert windows and {w["model"]["version"] for w in windows} == {"unversioned"}


def test_the_edge_config_key_allows_it_too(tmp_path):
    cut = damaged(tmp_path, "cut")
    config = tmp_path / "edge.toml"
    config.write_text("allow_unversioned = true\n")
    allowed = edge_run(tmp_path, cut, "--config", config)
    assert allowed.returncode == 0, allowed.stderr
    assert "running it as version 'unversioned'" in allowed.stderr


def test_evaluate_and_bench_edge_refuse_it_and_evaluate_runs_it_when_allowed(tmp_path, capsys):
    cut = damaged(tmp_path, "cut")
    write_split(tmp_path / "faces", 2, seed=3)
    assert main(["evaluate", str(cut), str(tmp_path / "faces")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("emo7ion evaluate: error: ") and str(cut) in error[0]
    assert main(["evaluate", str(cut), str(tmp_path / "faces"), "--allow-unversioned", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["version"] == "unversioned"
    assert main(["bench", "edge", "--images", str(frames_folder(tmp_path)), "--model", str(cut),
                 "--frames", "1", "--sizes", "320x240"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error[-1].startswith("emo7ion bench: error: ") and str(cut) in error[-1]
