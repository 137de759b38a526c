"""Display labels of experiments: "MNIST-5k · CNN 32→8" instead of the experiment id.

An experiment's id (``mnist-5k--cnn_channels=32_width=128--cnn_channels=8``) is its key in the
store, in CSV, JSON and provenance; readers of figures, tables and report headings see its
title instead. The title is the ``title`` attribute when the run set one (``kdtheory run
--title``), else one derived from the dataset, teacher and student specs. Standard library
only: importing this module is cheap.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

__all__ = ["TITLE_ATTR", "experiment_title", "experiment_titles", "spec_label"]

#: the experiment attribute that holds a title given by ``kdtheory run --title``
TITLE_ATTR = "title"

#: display names of the built-in datasets and architectures
_DATASET_NAMES = {
    "mnist": "MNIST",
    "mnist-5k": "MNIST-5k",
    "mnist1d": "MNIST-1D",
    "digits": "Digits",
    "synthetic": "Synthetic",
    "npz": "npz",
}
_ARCH_NAMES = {"mlp": "MLP", "mlp-wide": "MLP-wide", "cnn": "CNN", "vit": "ViT"}
#: the option that says how big an architecture is, shown after its name ("CNN 32")
_ARCH_SIZE = {"mlp": "width", "mlp-wide": "width", "cnn": "channels", "vit": "dim"}
#: short names of dataset options ("MNIST-1D n=4000")
_DATASET_OPTIONS = {"num_samples": "n"}
ARROW = "\u2192"
DOT = " \u00b7 "


def _split(spec: str) -> tuple[str, list[tuple[str, str]]]:
    """``"cnn:channels=32,width=128"`` -> ``("cnn", [("channels", "32"), ("width", "128")])``;
    never raises (a part without ``=`` is kept as a bare value)."""
    name, _, rest = spec.strip().partition(":")
    options = []
    for part in rest.split(","):
        key, eq, value = part.partition("=")
        if part.strip():
            options.append((key.strip(), value.strip()) if eq else ("", key.strip()))
    return name.strip(), options


def _dataset_label(spec: str) -> str:
    name, options = _split(spec)
    shown = _DATASET_NAMES.get(name, name)
    parts = [f"{_DATASET_OPTIONS.get(k, k)}={v}" if k else v for k, v in options]
    return " ".join([shown, *parts])


def spec_label(spec: str) -> tuple[str, str]:
    """An architecture spec as ``(family, size)``: ``"cnn:channels=32"`` -> ``("CNN", "32")``.

    Known architectures show their size option (channels of a CNN, width of an MLP, dim of a
    ViT) and drop the others; an unknown one keeps its name and shows its options as
    ``key=value``. ``size`` is ``""`` when the spec gives none.

    Parameters
    ----------
    spec : str
        An architecture spec, e.g. ``"vit:dim=32,heads=2"``.

    Returns
    -------
    tuple of str
    """
    name, options = _split(spec)
    if name in _ARCH_NAMES:
        size = dict(options).get(_ARCH_SIZE[name], "")
        return _ARCH_NAMES[name], size
    return name or "?", " ".join(f"{k}={v}" if k else v for k, v in options)


def _models_label(teacher: str, student: str) -> str:
    (t_family, t_size), (s_family, s_size) = spec_label(teacher), spec_label(student)
    if t_family == s_family and t_size and s_size:
        return f"{t_family} {t_size}{ARROW}{s_size}"
    t_text = f"{t_family} {t_size}".strip()
    s_text = f"{s_family} {s_size}".strip()
    return f"{t_text}{ARROW}{s_text}"


def _attrs_of(ds_or_attrs: Any) -> Mapping[str, Any]:
    attrs = getattr(ds_or_attrs, "attrs", ds_or_attrs)
    return attrs if isinstance(attrs, Mapping) else {}


def experiment_title(ds_or_attrs: Any) -> str:
    """The display label of one experiment.

    The ``title`` attribute when set and not blank; else ``"DATASET · TEACHER→STUDENT"``
    from the ``dataset``, ``teacher`` and ``student`` attributes (``"MNIST-5k · CNN 32→8"``,
    ``"MNIST-1D n=4000 · CNN 64→MLP 128"``); else the ``experiment`` id; else ``"experiment"``.
    Never raises.

    Parameters
    ----------
    ds_or_attrs : xarray.Dataset or mapping
        An experiment of a run store, or its attributes.

    Returns
    -------
    str
    """
    attrs = _attrs_of(ds_or_attrs)
    title = str(attrs.get(TITLE_ATTR) or "").strip()
    if title:
        return " ".join(title.split())
    dataset, teacher, student = (attrs.get(k) for k in ("dataset", "teacher", "student"))
    if dataset and teacher and student:
        return f"{_dataset_label(str(dataset))}{DOT}{_models_label(str(teacher), str(student))}"
    return str(attrs.get("experiment") or "experiment")


def experiment_titles(store: Mapping[str, Any]) -> dict[str, str]:
    """Display labels of a store's experiments, id -> title, distinct within the store.

    Two experiments whose titles would read the same (same dataset and models, different
    recipes) get their id appended in parentheses, so a reader can tell their panels apart.

    Parameters
    ----------
    store : mapping of str to xarray.Dataset
        Experiment id -> experiment (a :class:`~kdtheory.store.runs.RunStore` or a dict).

    Returns
    -------
    dict of str to str
    """
    titles = {name: experiment_title(ds) for name, ds in store.items()}
    counts = Counter(titles.values())
    return {
        name: title if counts[title] == 1 or title == name else f"{title} ({name})"
        for name, title in titles.items()
    }
