"""The tuning: production values that hold together, and the typed hand-over to a live service."""

from __future__ import annotations

import dataclasses
import json

import pytest

from app.tuning import Tuning
from tests.tuning import TUNING_ENV, tuning_env, tuning_from_env


def test_a_live_stream_renews_its_slot_well_before_the_lease_ends():
    # The longest a live stream goes unrenewed is a renewal period plus a keep-alive's silence.
    tuning = Tuning()
    assert tuning.stream_renew_seconds + tuning.keepalive_seconds < tuning.stream_lease_seconds


def test_a_health_change_shows_within_five_seconds_even_when_a_check_hangs():
    tuning = Tuning()
    assert tuning.health_cache_seconds + tuning.health_deadline_seconds <= 5


def test_tuning_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Tuning().max_streams_per_client = 1000  # type: ignore[misc]  # the assignment under test


def test_only_changed_fields_travel_and_come_back_the_same():
    tuning = Tuning(token_delay_seconds=0.02, rate_limit_default="1/minute", max_streams_per_client=2)
    env = tuning_env(tuning)
    assert json.loads(env[TUNING_ENV]) == {
        "rate_limit_default": "1/minute",
        "max_streams_per_client": 2,
        "token_delay_seconds": 0.02,
    }
    assert tuning_from_env(env[TUNING_ENV]) == tuning
    assert tuning_env(Tuning()) == {} and tuning_env(None) == {}
    assert tuning_from_env("") == Tuning()


def test_an_unknown_field_fails_loudly():
    # A misspelt or renamed field is never ignored.
    with pytest.raises(ValueError, match="no field health_cache_second; known: max_request_bytes, "):
        tuning_from_env('{"health_cache_second": 0}')


@pytest.mark.parametrize(
    "fields",
    ['{"max_streams_per_client": "1000"}', '{"keepalive_seconds": true}', '{"rate_limit_default": 5}', "[]"],
)
def test_a_value_of_the_wrong_type_fails_loudly(fields):
    with pytest.raises(ValueError, match=TUNING_ENV):
        tuning_from_env(fields)


def test_an_int_is_a_float():
    assert tuning_from_env('{"health_cache_seconds": 0}').health_cache_seconds == 0
