"""Shared fixtures: a tiny real sweep, trained once per test session."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from kdtheory.training.sweep import ExperimentConfig

TINY = ExperimentConfig(
    dataset="synthetic:n_train=240,n_test=120,num_classes=4,dim=8,seed=3",
    teacher="mlp:width=32,depth=1",
    student="mlp:width=16,depth=1",
    fractions=(0.1, 0.5, 1.0),
    seeds=(0, 1),
    methods=("label", "kd:T=4", "ls:eps=matched", "kd-shuffled:T=4"),
    steps=40,
    batch_size=16,
    teacher_steps=80,
    feature_samples=48,
    log_points=10,
)


def tiny_config(**changes) -> ExperimentConfig:
    """The tiny experiment used across tests, with ``changes`` applied."""
    return replace(TINY, **changes)


@pytest.fixture(scope="session", autouse=True)
def _teacher_cache_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Sweeps of the tests (in-process and ``kdtheory`` subprocesses) keep their teachers and
    generated datasets in a temporary cache (``$KDTHEORY_CACHE``), never in the user's real
    one."""
    root = tmp_path_factory.mktemp("kdtheory-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KDTHEORY_CACHE", str(root))
        yield root / "teachers"


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run store with one tiny experiment (24 cells), trained once."""
    from kdtheory.training.sweep import run_experiment

    out = tmp_path_factory.mktemp("store")
    run_experiment(TINY, out, device="cpu")
    return out
