"""core/runtime: the interpreter wrapper's contract checks and error messages."""

import numpy as np
import pytest

from emo7ion.core import emotions, faces, provenance
from emo7ion.core.runtime import EmotionClassifier, ModelError


def test_missing_and_corrupt_model_files(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        EmotionClassifier(tmp_path / "none.tflite")
    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(b"\x00" * 64 + b"garbage" * 100)
    with pytest.raises(ModelError, match="not a valid TFLite model"):
        EmotionClassifier(corrupt)


def test_truncated_real_model_is_refused(converted, tmp_path):
    real = (converted["out"] / f"{converted['stem']}-int8.tflite").read_bytes()
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(provenance.strip(real)[: len(real) // 3])
    with pytest.raises(ModelError):
        EmotionClassifier(cut)


def _with_metadata(converted, tmp_path, **changes):
    path = converted["out"] / f"{converted['stem']}-float32.tflite"
    data = path.read_bytes()
    meta = provenance.read(data) | changes
    target = tmp_path / "changed.tflite"
    target.write_bytes(provenance.embed(data, meta))
    return target


def test_unknown_labels_or_input_contract_are_refused(converted, tmp_path):
    with pytest.raises(ModelError, match="labels"):
        EmotionClassifier(_with_metadata(converted, tmp_path, labels=["a", "b", "c", "d", "e", "f", "g"]))
    with pytest.raises(ModelError, match="input size"):
        EmotionClassifier(_with_metadata(converted, tmp_path, input={**faces.CONTRACT.as_dict(), "size": 64}))
    with pytest.raises(ModelError, match="scale"):
        EmotionClassifier(_with_metadata(converted, tmp_path, input={**faces.CONTRACT.as_dict(), "scale": 1.0}))


def test_other_label_order_is_remapped_to_canonical(converted, tmp_path):
    base = EmotionClassifier(converted["out"] / f"{converted['stem']}-float32.tflite")
    # Claim the model's outputs are in FER2013 csv order: the runtime must permute them back.
    swapped = EmotionClassifier(_with_metadata(converted, tmp_path, labels=list(emotions.FER2013_CSV_ORDER)))
    x = np.random.default_rng(0).random((5, 48, 48, 1), dtype=np.float32)
    raw, remapped = base.predict(x), swapped.predict(x)
    for model_index, label in enumerate(emotions.FER2013_CSV_ORDER):
        np.testing.assert_allclose(remapped[:, emotions.LABELS.index(label)], raw[:, model_index])


def test_batches_of_any_size_match_single_faces(converted):
    classifier = EmotionClassifier(converted["out"] / f"{converted['stem']}-int8.tflite", max_batch=4)
    x = np.random.default_rng(1).random((10, 48, 48, 1), dtype=np.float32)
    batched = classifier.predict(x)
    singles = np.concatenate([classifier.predict(x[i:i + 1]) for i in range(10)])
    np.testing.assert_allclose(batched, singles, atol=1e-6)
    assert classifier.predict(x[:0]).shape == (0, 7)
    assert [p.label for p in classifier.classify(x[:3])] == [emotions.LABELS[i] for i in batched[:3].argmax(1)]


def test_flip_average_is_the_mean_of_face_and_mirror(converted):
    path = converted["out"] / f"{converted['stem']}-int8.tflite"
    plain = EmotionClassifier(path, max_batch=8)
    flipped = EmotionClassifier(path, max_batch=8, flip_average=True)
    x = np.random.default_rng(2).random((13, 48, 48, 1), dtype=np.float32)
    expected = 0.5 * (plain.predict(x) + plain.predict(x[:, :, ::-1]))
    np.testing.assert_allclose(flipped.predict(x), expected, atol=1e-6)
    symmetric = np.concatenate([x[:, :, :24], x[:, :, :24][:, :, ::-1]], axis=2)
    np.testing.assert_allclose(flipped.predict(symmetric), plain.predict(symmetric), atol=1e-6)
    assert flipped.predict(x[:0]).shape == (0, 7)
