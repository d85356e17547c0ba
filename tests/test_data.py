"""The FER2013 readers: folders, archives and Kaggle's csv, with their bad inputs."""

import logging
import tarfile

import numpy as np
import pytest

from emo7ion.core import emotions
from emo7ion.training import data
from helpers import write_split


def test_folder_reader_labels_and_skips(tmp_path, caplog):
    write_split(tmp_path / "train", 3, seed=0)
    (tmp_path / "train" / "contempt").mkdir()
    (tmp_path / "train" / "contempt" / "x.png").write_bytes(b"not read")
    (tmp_path / "train" / "happy" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    (tmp_path / "train" / "happy" / "notes.txt").write_text("hello")
    with caplog.at_level(logging.WARNING):
        dataset = data.load(tmp_path, "train")
    assert len(dataset) == 21 and dataset.x.shape == (21, 48, 48) and dataset.x.dtype == np.uint8
    assert dataset.class_counts() == {label: 3 for label in emotions.LABELS}
    assert dataset.skipped == {"unknown class folder": 1, "unreadable image": 1, "not an image": 1}
    assert "contempt" in caplog.text and "broken.jpg" in caplog.text
    with pytest.raises(data.DataError, match="contempt"):
        data.load(tmp_path / "train", strict=True)


def test_label_comes_from_the_folder(tmp_path):
    write_split(tmp_path, 2, seed=3)
    dataset = data.load(tmp_path)
    # conftest draws class i at brightness 20 + 32 i: the label must match what was drawn.
    for image, label in zip(dataset.x, dataset.y):
        assert round((image.mean() - 20) / 32) == label


def test_empty_class_fails(tmp_path):
    write_split(tmp_path, 2, seed=0)
    for file in (tmp_path / "disgust").iterdir():
        file.unlink()
    with pytest.raises(data.DataError, match="disgust"):
        data.load(tmp_path)


def test_missing_split_and_path(tmp_path):
    with pytest.raises(data.DataError, match="does not exist"):
        data.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(data.DataError):
        data.load(tmp_path / "empty", "val")


def test_archive_reader_matches_folder_reader(tmp_path):
    write_split(tmp_path / "fer" / "train", 2, seed=0)
    write_split(tmp_path / "fer" / "val", 1, seed=1)
    archive = tmp_path / "fer.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "fer", arcname="fer2013")
    for split, n in (("train", 14), ("val", 7)):
        from_tar = data.load(archive, split)
        from_dir = data.load(tmp_path / "fer", split)
        assert len(from_tar) == n
        order_tar, order_dir = np.lexsort((from_tar.y,)), np.lexsort((from_dir.y,))
        assert sorted(from_tar.y.tolist()) == sorted(from_dir.y.tolist())
        assert sorted(map(bytes, from_tar.x[order_tar])) == sorted(map(bytes, from_dir.x[order_dir]))


def test_csv_reader_maps_codes_and_counts_bad_rows(tmp_path, caplog):
    good = " ".join(["7"] * 2304)
    rows = ["emotion,pixels,Usage",
            f"3,{good},Training",             # happy
            f"6,{good},Training",             # neutral (csv code 6)
            f"4,{good},PublicTest",           # sad, other split
            f"9,{good},Training",             # bad code
            "0,1 2 3,Training",               # too few pixels
            f"x,{good},Training",             # not a number
            f"1,{' '.join(['300'] * 2304)},Training"]  # out of range
    path = tmp_path / "fer2013.csv"
    path.write_text("\n".join(rows) + "\n")
    with caplog.at_level(logging.WARNING):
        dataset = data.load_csv(path, "train")
    assert [emotions.LABELS[i] for i in dataset.y] == ["happy", "neutral"]
    assert dataset.skipped["bad csv row"] == 4
    assert "line 5, 6, 7, 8" in caplog.text
    assert dataset.x[0, 0, 0] == 7
    assert [emotions.LABELS[i] for i in data.load_csv(path, "val").y] == ["sad"]
    with pytest.raises(data.DataError, match="lacks column"):
        (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
        data.load_csv(tmp_path / "bad.csv")


def test_subset_is_stratified(tmp_path):
    write_split(tmp_path, 10, seed=0)
    subset = data.load(tmp_path).subset(35, seed=1)
    assert set(subset.class_counts().values()) == {5}
