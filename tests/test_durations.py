"""Durations are said one way: the policy syntax round-trips, and what people read uses one set
of unit words whether it is a target, a countdown or a measured time."""

from __future__ import annotations

from datetime import timedelta

import pytest

from escalation_matrix.durations import duration_label, format_duration, measured_label, parse_duration, time_left


@pytest.mark.parametrize("text, seconds", [
    ("90s", 90), ("5m", 300), ("24h", 86400), ("2d", 172800), ("1w", 604800), (" 1.5 h ", 5400), (45, 45),
])
def test_the_policy_syntax_parses(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["5", "5 minutes", "m5", "", "-5m", True])
def test_anything_else_is_refused_with_an_example(text):
    with pytest.raises(ValueError, match="e.g. 30s, 5m, 24h, 2d, 1w"):
        parse_duration(text)


@pytest.mark.parametrize("text, written", [
    ("0s", "0s"), ("90s", "90s"), ("5m", "5m"), ("24h", "1d"), ("2d", "2d"), ("1w", "1w"), ("14d", "2w"),
])
def test_the_policy_syntax_is_written_back_in_its_largest_even_unit(text, written):
    assert format_duration(parse_duration(text)) == written
    assert parse_duration(written) == parse_duration(text)


@pytest.mark.parametrize("seconds, label", [
    (0, "immediately"), (45, "45 s"), (120, "2 min"), (900, "15 min"), (3600, "1 h"), (86400, "24 h"),
    (172800, "2 d"), (604800, "7 d"), (5400, "90 min"), (90, "90 s"),
])
def test_an_exact_duration_reads_in_the_largest_unit_that_divides_evenly(seconds, label):
    assert duration_label(seconds) == label
    assert duration_label(timedelta(seconds=seconds)) == label


@pytest.mark.parametrize("seconds, label", [
    (30, "under a minute"), (720, "12 min"), (4 * 3600 + 600 + 59, "4 h 10 min"), (2 * 86400 + 3 * 3600 + 60, "2 d 3 h"),
])
def test_a_countdown_is_rounded_down_to_two_units(seconds, label):
    assert time_left(seconds) == label


@pytest.mark.parametrize("seconds, label", [
    (None, "-"), (90, "90 s"), (600, "10 min"), (9000, "2.5 h"), (267840, "3.1 d"),
])
def test_a_measured_time_uses_the_same_unit_words(seconds, label):
    assert measured_label(seconds) == label
