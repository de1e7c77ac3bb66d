"""Reading a Prometheus text exposition (``/metrics``) in tests: every sample by name and labels."""

from __future__ import annotations

import re

Sample = tuple[str, frozenset[tuple[str, str]]]
"""A series: its name and its labels."""

_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def samples(text: str) -> dict[Sample, float]:
    """``{(name, labels): value}`` of every sample in ``text``."""
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            name, _, labels = series.partition("{")
            found[(name, frozenset(_LABEL.findall(labels)))] = float(value)
    return found


def series(name: str, **labels: str) -> Sample:
    """The key of one series in :func:`samples`: ``series("x_bucket", le="0.1")``."""
    return name, frozenset(labels.items())


def value(text: str, name: str, **labels: str) -> float:
    """The value of one series in ``text``; AssertionError if ``/metrics`` lacks it."""
    key = series(name, **labels)
    found = samples(text)
    assert key in found, f"{name}{labels or ''} missing from /metrics"
    return found[key]


def by_label(text: str, name: str, label: str) -> dict[str, float]:
    """``{label value: value}`` of the series of ``name`` in ``text`` that carry ``label``."""
    found: dict[str, float] = {}
    for (sample, labels), number in samples(text).items():
        values = dict(labels)
        if sample == name and label in values:
            found[values[label]] = number
    return found
