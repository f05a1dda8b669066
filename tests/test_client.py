"""Parsing what the upstream says: defensively, within what lumaweb can store."""

import pytest

from generations.client import OutcomeUnknownError, RemoteGeneration


def test_numbers_arrive_as_numbers_strings_or_null():
    for raw, parsed in (
        (12, 12),
        ("12", 12),
        ("12.7", 12),
        (None, None),
        ("soon", None),
        (True, None),
        (-3, None),
    ):
        gen = RemoteGeneration.from_json({"id": "a", "estimate_wait_seconds": raw})
        assert gen.estimate_wait_seconds == parsed, raw


def test_values_too_long_for_our_columns_are_bounded():
    gen = RemoteGeneration.from_json(
        {
            "id": "a",
            "state": "x" * 500,
            "video": {"url": "https://cdn.example.com/" + "v" * 5000, "thumbnail": "ftp://x/y.jpg"},
            "failure_reason": "r" * 5000,
        }
    )
    assert len(gen.state) == 50
    assert gen.video_url == ""  # unusable: keep polling until a usable one comes
    assert gen.thumbnail_url == ""
    assert len(gen.failure_reason) == 500


def test_an_id_we_cannot_keep_is_an_unknown_outcome():
    with pytest.raises(OutcomeUnknownError):
        RemoteGeneration.from_json({"id": "i" * 300})


def test_odd_shapes_are_tolerated():
    gen = RemoteGeneration.from_json({"id": 42, "video": "not an object", "created_at": "nope"})
    assert gen.id == "42" and gen.video_url == "" and gen.created_at is None
