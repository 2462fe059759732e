"""The one duration parser/formatter: the seeds' forms, round trips, clear errors."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from lightd_shared.durations import Duration, DurationError, format_duration, parse_duration

SEED_FORMS = {
    "30s": timedelta(seconds=30),
    "24h": timedelta(hours=24),
    "100ms": timedelta(milliseconds=100),
    "150ms": timedelta(milliseconds=150),
    "2h30m15s": timedelta(hours=2, minutes=30, seconds=15),
    "10s": timedelta(seconds=10),
    "120s": timedelta(seconds=120),
    "1m30s": timedelta(minutes=1, seconds=30),
    "1.5s": timedelta(seconds=1, milliseconds=500),
}


@pytest.mark.parametrize(("text", "value"), SEED_FORMS.items())
def test_parses_the_seed_forms(text: str, value: timedelta) -> None:
    assert parse_duration(text) == value


@pytest.mark.parametrize(
    "text", ["30s", "24h", "100ms", "2h30m15s", "1m30s", "1.5s", "0s", "250us", "1.5ms", "1h1s"]
)
def test_canonical_forms_roundtrip(text: str) -> None:
    assert format_duration(parse_duration(text)) == text


def test_go_style_alternatives_parse() -> None:
    assert parse_duration("120s") == parse_duration("2m")
    assert format_duration(parse_duration("120s")) == "2m"
    assert parse_duration("24h0m0s") == timedelta(hours=24)
    assert parse_duration("1500ns") == timedelta(microseconds=2)  # rounded to Python's resolution
    assert parse_duration("0") == timedelta(0)


@given(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=10_000)))
def test_every_duration_roundtrips(value: timedelta) -> None:
    assert parse_duration(format_duration(value)) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("30", "has no unit"),
        ("", "empty"),
        ("-5s", "negative"),
        ("5 seconds", "invalid duration"),
        ("5x", "invalid duration"),
        ("s", "invalid duration"),
        ("10s junk", "invalid duration"),
    ],
)
def test_bad_input_gets_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(DurationError, match=message):
        parse_duration(text)


class _Model(BaseModel):
    every: Duration


def test_model_field_reads_and_writes_strings() -> None:
    model = _Model.model_validate({"every": "1m30s"})
    assert model.every == timedelta(seconds=90)
    assert model.model_dump(mode="json") == {"every": "1m30s"}
    with pytest.raises(ValidationError, match="has no unit"):
        _Model.model_validate({"every": "30"})
    with pytest.raises(ValidationError, match="must be a string"):
        _Model.model_validate({"every": 30})
