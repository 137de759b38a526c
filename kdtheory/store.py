"""Run store: placeholder being written by the lead engineer (open_runs returns a RunStore)."""

from __future__ import annotations

from collections.abc import Mapping


class RunStore(dict):
    """Mapping of experiment id -> xarray.Dataset (schema v1)."""


def open_runs(path):  # pragma: no cover - replaced shortly
    raise NotImplementedError
