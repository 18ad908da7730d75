"""CPU, memory and duration quantities: the one reader, for specs, a local cluster's settings and what
Kubernetes reports."""

from __future__ import annotations

from fractions import Fraction

import pytest
from kubernetes.utils import parse_quantity as kubernetes_parse_quantity

from clusters.backends.base import BackendUnavailable
from clusters.backends.contract.quantity import (
    format_cpu,
    format_memory,
    parse_cpu,
    parse_duration,
    parse_memory,
    parse_quantity,
)
from clusters.backends.local.resources import load_config

Ki, Mi, Gi, Ti, Ei = 2**10, 2**20, 2**30, 2**40, 2**60


@pytest.mark.parametrize(
    ("value", "milli"),
    [
        (2, 2000),
        (0.5, 500),
        (0, 0),
        ("500m", 500),
        ("1m", 1),
        ("2", 2000),
        ("0.5", 500),
        (".5", 500),
        ("1.", 1000),
        ("1.250", 1250),
        ("2e0", 2000),
        ("1e-3", 1),
        ("1E3", 1_000_000),
        ("100000", 100_000_000),
        (1e-3, 1),
    ],
)
def test_parse_cpu(value, milli):
    assert parse_cpu(value) == milli


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("0.0001", "millicore"),
        ("0.5m", "millicore"),
        ("1Gi", "'Gi'"),
        ("1k", "'k'"),
        ("-1", "negative"),
        (-1, "negative"),
        (True, "boolean"),
        (None, "quantity"),
        ([1], "quantity"),
        ("", "not a quantity"),
        (" 1", "not a quantity"),
        ("1 ", "not a quantity"),
        ("1,5", "not a quantity"),
        ("one", "not a quantity"),
        ("0x10", "not a quantity"),
        ("\u0661", "not a quantity"),  # an Arabic-Indic one: digits are ASCII here
        ("1e99", "out of range"),
        ("1" * 65, "too long"),
        (float("nan"), "finite"),
        (float("inf"), "finite"),
        (10**30, "too large"),
    ],
)
def test_parse_cpu_refuses(value, words):
    with pytest.raises(ValueError, match=words):
        parse_cpu(value)


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ("512Mi", 512 * Mi),
        ("4Gi", 4 * Gi),
        ("1.5Gi", 1536 * Mi),
        ("1Ki", Ki),
        ("1Ti", Ti),
        ("1Pi", 2**50),
        ("7Ei", 7 * Ei),
        ("1k", 1000),
        ("1M", 10**6),
        ("1G", 10**9),
        ("1T", 10**12),
        ("1P", 10**15),
        ("1E", 10**18),  # exa, not an exponent
        ("1E3", 1000),  # an exponent: it has digits
        ("1e9", 10**9),
        ("1.5e3", 1500),
        ("1000000", 10**6),
        (1000000, 10**6),
        (1e9, 10**9),
        ("0", 0),
        ("0.5Ki", 512),
    ],
)
def test_parse_memory(value, size):
    assert parse_memory(value) == size


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("512m", "did you mean 'Mi'"),
        ("0.5", "whole number of bytes"),
        ("1.0000001Ki", "whole number of bytes"),
        ("4GB", "not a quantity"),
        ("4gi", "not a quantity"),
        ("Gi", "not a quantity"),
        ("-1Gi", "negative"),
        ("8Ei", "too large"),
        (2**63, "too large"),
        ("1e-40", "out of range"),
        (False, "boolean"),
        ({"size": 1}, "quantity"),
    ],
)
def test_parse_memory_refuses(value, words):
    with pytest.raises(ValueError, match=words):
        parse_memory(value)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("90s", 90),
        ("30m", 1800),
        ("2h", 7200),
        ("1d", 86400),
        ("1h30m", 5400),
        ("1d2h3m4s", 93784),
        ("1.5h", 5400),
        ("0s", 0),
        (3600, 3600),
        ("3600", 3600),
    ],
)
def test_parse_duration(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("", "not a duration"),
        ("h", "not a duration"),
        ("1h 30m", "not a duration"),
        ("1H", "not a duration"),
        ("1w", "not a duration"),
        ("-1h", "not a duration"),
        ("1.h", "not a duration"),
        ("0.5s", "whole number of seconds"),
        (-1, "negative"),
        (1.5, "text"),
        (True, "text"),
        (None, "text"),
        ("9" * 70 + "s", "not a duration"),
    ],
)
def test_parse_duration_refuses(value, words):
    with pytest.raises(ValueError, match=words):
        parse_duration(value)


@pytest.mark.parametrize(
    ("milli", "text"), [(0, "0"), (1, "1m"), (250, "250m"), (500, "0.5"), (1000, "1"), (1500, "1.5"), (64000, "64")]
)
def test_format_cpu(milli, text):
    assert format_cpu(milli) == text


def test_format_cpu_reads_back_exactly():
    for milli in [*range(0, 5001), 10**12 + 7]:
        assert parse_cpu(format_cpu(milli)) == milli


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0"),
        (1023, "1023"),
        (Ki, "1Ki"),
        (512 * Mi, "512Mi"),
        (4 * Gi, "4Gi"),
        (1536 * Mi, "1.5Gi"),
        (Gi + Gi // 4, "1.25Gi"),
        (10**9, "1G"),
        (2 * 10**12, "2T"),
        (123_456_789, "117.74Mi"),  # rounded, for display
        (Gi - 1, "1Gi"),  # rounds up into the next unit, not "1024Mi"
        (7 * Ei, "7Ei"),
    ],
)
def test_format_memory(size, text):
    assert format_memory(size) == text


def test_format_memory_is_exact_when_two_decimals_of_a_binary_unit_say_it():
    for unit in (Ki, Mi, Gi, Ti):
        for hundredths in range(100, 102400, 25):  # 1.00 up to 1023.75 of the unit
            size = unit * hundredths // 100
            assert parse_memory(format_memory(size)) == size


@pytest.mark.parametrize("bad", [-1, 1.5, "1", True, None])
def test_format_refuses_what_is_not_a_count(bad):
    with pytest.raises(ValueError):
        format_cpu(bad)
    with pytest.raises(ValueError):
        format_memory(bad)


# --- a local cluster's capacity settings: rounded down, not refused -------------------------------------


@pytest.mark.parametrize(
    ("value", "milli"),
    [(2, 2000), (0.5, 500), ("500m", 500), ("1.5", 1500), (".5", 500), ("0.0005", 0), ("1.0005", 1000),
     ("0.5m", 0), ("2e0", 2000)],
)  # fmt: skip
def test_parse_cpu_rounds_a_setting_down_to_a_millicore(value, milli):
    assert parse_cpu(value, round_down=True) == milli


@pytest.mark.parametrize(
    ("value", "size"),
    [("8Gi", 8 * Gi), ("512Mi", 512 * Mi), ("1G", 10**9), (1000, 1000), ("1.5", 1), ("0.3Ki", 307),
     ("15.6Gi", 16750372454), ("1.0000001Ki", 1024)],
)  # fmt: skip
def test_parse_memory_rounds_a_setting_down_to_a_byte(value, size):
    assert parse_memory(value, round_down=True) == size


@pytest.mark.parametrize(
    ("parse", "value", "words"),
    [(parse_cpu, "1Gi", "'Gi'"), (parse_cpu, -1, "negative"), (parse_cpu, True, "boolean"),
     (parse_cpu, "two", "not a quantity"), (parse_memory, "512m", "did you mean 'Mi'"),
     (parse_memory, "8GB", "not a quantity"), (parse_memory, -1.5, "negative"), (parse_memory, [8], "quantity")],
)  # fmt: skip
def test_rounding_down_still_refuses_what_is_not_a_quantity(parse, value, words):
    with pytest.raises(ValueError, match=words):
        parse(value, round_down=True)


def test_a_local_clusters_settings_forgive_spaces_and_round_down():
    config = load_config("local", {"cpu": " 2.0005 ", "memory": "1.5Gi ", "gpus": 0}, 10.0)
    assert (config.capacity.cpu_milli, config.capacity.memory_bytes) == (2000, 1536 * Mi)


def test_a_bad_capacity_setting_names_its_key():
    with pytest.raises(BackendUnavailable, match="settings.cpu: cpu 'lots' is not a quantity"):
        load_config("local", {"cpu": "lots", "gpus": 0}, 10.0)
    with pytest.raises(BackendUnavailable, match="settings.memory: .*did you mean 'Mi'"):
        load_config("local", {"memory": "512m", "gpus": 0}, 10.0)


# --- what a Kubernetes cluster reports: the Kubernetes client's reading, exactly ------------------------

# Quantities as the API server writes them in node allocatable and pod requests (canonical forms).
REPORTED = ["4", "3920m", "8000m", "2500m", "100n", "250u", "0", "0.5", "1.5", "16318284Ki", "64Gi", "1Ti",
            "1Ei", "1k", "1M", "1G", "1E", "128974848", "129e6", "1e3", "1E3", "1.5e-3", "123Mi", ".5", "1."]  # fmt: skip


@pytest.mark.parametrize("value", REPORTED)
def test_parse_quantity_reads_what_a_cluster_reports_as_the_kubernetes_client_does(value):
    assert parse_quantity(value) == Fraction(kubernetes_parse_quantity(value))


@pytest.mark.parametrize(
    ("value", "amount"),
    [("3920m", Fraction(392, 100)), ("100n", Fraction(1, 10**7)), ("16Gi", 16 * Gi), ("4", 4), (2, 2),
     ("1.5Gi", 1536 * Mi)],
)  # fmt: skip
def test_parse_quantity_is_exact_in_the_resources_own_unit(value, amount):
    assert parse_quantity(value) == amount


@pytest.mark.parametrize(
    ("value", "words"),
    [("-1", "negative"), ("4GB", "not a quantity"), ("", "not a quantity"), ("1e99", "out of range"),
     (None, "quantity"), (True, "boolean")],
)  # fmt: skip
def test_parse_quantity_refuses_what_no_cluster_reports(value, words):
    with pytest.raises(ValueError, match=words):
        parse_quantity(value, "memory")


@pytest.mark.parametrize(("value", "words"), [("1n", "'n'"), ("1u", "'u'")])
def test_cpu_and_memory_refuse_nano_and_micro(value, words):
    with pytest.raises(ValueError, match=words):
        parse_cpu(value)
    with pytest.raises(ValueError, match=words):
        parse_memory(value)
