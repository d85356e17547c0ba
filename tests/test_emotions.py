import pytest

from emo7ion.core import emotions


def test_canonical_order_is_alphabetical_and_complete():
    assert emotions.LABELS == ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
    assert list(emotions.LABELS) == sorted(emotions.LABELS)


def test_fer2013_csv_codes_map_to_canonical():
    # Kaggle: 0=Angry 1=Disgust 2=Fear 3=Happy 4=Sad 5=Surprise 6=Neutral
    expected = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert [emotions.LABELS[emotions.fer2013_csv_to_canonical(code)] for code in range(7)] == expected
    with pytest.raises(ValueError, match="outside 0..6"):
        emotions.fer2013_csv_to_canonical(7)


def test_remap_from_other_order_and_aliases():
    order = ["Happy", "sadness", "angry", "disgust", "fear", "neutral", "surprised"]
    assert emotions.remap_from(order) == [3, 5, 0, 1, 2, 4, 6]
    with pytest.raises(ValueError):
        emotions.remap_from(["happy"] * 7)
    with pytest.raises(ValueError, match="unknown emotion"):
        emotions.normalise_label("contempt")
