"""A content-addressed cache of trained teachers, shared by every sweep and store of a user.

A teacher depends only on its training data, its architecture and initialisation, its recipe
(budget, batch size, learning rate, schedule, weight decay, seed), the device type and the
torch version; not on the students, fractions, methods or store it is trained for. Its weights
are therefore stored once under a key hashed from exactly these inputs (:func:`teacher_key`), and
any later sweep that needs the same teacher loads them instead of training it again.

Layout of the cache folder (:func:`default_cache_dir`, or ``--teacher-cache DIR``)::

    <dir>/<key>.pt      the teacher's state_dict (torch.save; loaded with weights_only=True)
    <dir>/<key>.json    what the key hashes, the training record and the .pt file's SHA-256

Both files are written atomically (temporary file, then rename), the ``.pt`` first: an entry
whose ``.json`` is missing was interrupted and counts as absent. An entry that does not verify
(unreadable metadata, other key inputs, a checksum that does not match, a file torch refuses
with ``weights_only=True``, tensors that do not fit the architecture or are not finite) is never
used: :class:`TeacherCacheWarning` says why, and the sweep trains the teacher again and replaces
the entry.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kdtheory.training.cache_dirs import CACHE_ENV
from kdtheory.training.cache_entries import (
    EntryFolder,
    EntryKey,
    UnusableEntry,
    canonical_json,
    read_metadata,
)

__all__ = [
    "CACHE_ENV",
    "ENTRY_FORMAT",
    "CachedTeacher",
    "TeacherCache",
    "TeacherCacheWarning",
    "TeacherKey",
    "default_cache_dir",
    "teacher_key",
]

#: version of what a key means and an entry holds; raise it when the teacher's training
#: numerics change (a new engine computing other weights for the same inputs), so that old
#: entries stop matching instead of standing in for teachers they no longer equal
ENTRY_FORMAT = 1


class TeacherCacheWarning(UserWarning):
    """A teacher cache entry could not be used or written; the teacher is trained instead."""


def default_cache_dir() -> Path:
    """The user's teacher cache folder.

    ``$KDTHEORY_CACHE/teachers`` when ``KDTHEORY_CACHE`` is set, else
    ``$XDG_CACHE_HOME/kdtheory/teachers``, else ``~/.cache/kdtheory/teachers``
    (:func:`kdtheory.training.cache_dirs.cache_dir`).
    """
    return TeacherCache.default_root()


#: the address of one teacher (:class:`~kdtheory.training.cache_entries.EntryKey`): ``digest``
#: hashes ``inputs``, what the teacher's weights depend on (see :func:`teacher_key`)
TeacherKey = EntryKey


def _sha256_arrays(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.data)
    return h.hexdigest()


def state_digest(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 of a state_dict's names, dtypes, shapes and values (in name order)."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().data if t.numel() else b"")
    return h.hexdigest()


def teacher_key(
    x_train: np.ndarray,
    y_train: np.ndarray,
    dataset: str,
    architecture: str,
    architecture_options: Mapping[str, Any],
    initial_state: Mapping[str, torch.Tensor],
    recipe: Mapping[str, Any],
    device_type: str,
    *,
    teacher_fraction: float = 1.0,
) -> TeacherKey:
    """The cache key of a teacher trained on ``(x_train, y_train)`` with ``recipe``.

    Parameters
    ----------
    x_train, y_train : numpy.ndarray
        The training inputs (float32) and labels the teacher trains on; their bytes are hashed,
        so a dataset spec naming other data (or a file changed in place) gets another key, and
        two specs loading the same data share one.
    dataset : str
        The dataset spec, recorded for people reading the entry (the data's hash is the key).
    architecture : str
        Registered architecture name.
    architecture_options : mapping
        Its resolved options (defaults filled in), so ``mlp`` and ``mlp:width=256`` agree.
    initial_state : mapping of str to torch.Tensor
        The teacher's state_dict at initialisation under its seed: a change of the
        architecture's layers or initialisation changes the key.
    recipe : mapping
        Everything of the training that changes the weights: budget in steps, batch size,
        learning rate, warm-up, weight decay, seed, logging points (they change the recorded
        loss), objective.
    device_type : str
        ``cpu``, ``cuda`` or ``mps``: the same recipe gives other float rounding on another
        kind of device.
    teacher_fraction : float
        The share of ``(x_train, y_train)`` the teacher trains on (its stratified subset of
        the recipe's seed, ``--teacher-fraction``). Hashed only when it is not 1, so the keys
        of teachers trained on all the data are those of earlier versions.

    Returns
    -------
    TeacherKey
    """
    inputs = {
        "format": ENTRY_FORMAT,
        "train_data_sha256": _sha256_arrays(
            np.asarray(x_train, dtype=np.float32), np.asarray(y_train, dtype=np.int64)
        ),
        "n_train": len(y_train),
        "dataset": dataset,
        "architecture": architecture,
        "architecture_options": _jsonable(dict(architecture_options)),
        "initial_state_sha256": state_digest(initial_state),
        "recipe": _jsonable(dict(recipe)),
        "device_type": device_type,
        "torch": torch.__version__,
    }
    if teacher_fraction != 1:
        inputs["teacher_fraction"] = float(teacher_fraction)
    return EntryKey.of(inputs, hashed=_hashed(inputs))


def _hashed(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs a key hashes: all but the dataset spec, a label (the data's hash counts)."""
    return {k: v for k, v in inputs.items() if k != "dataset"}


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


@dataclass
class CachedTeacher:
    """A verified cache entry.

    Attributes
    ----------
    state : dict of str to torch.Tensor
        The trained teacher's state_dict (CPU tensors).
    training : dict
        The training record stored with it (``teacher_steps_trained``, ...), as the store's
        ``teacher.nc`` attributes name them.
    path : Path
        The entry's ``.pt`` file.
    """

    state: dict[str, torch.Tensor]
    training: dict[str, Any]
    path: Path


class TeacherCache(EntryFolder):
    """Teachers by key in one folder: ``<key>.pt`` (weights) and ``<key>.json`` (metadata).

    Parameters
    ----------
    root : str or Path
        The cache folder; created on the first write.
    """

    folder_name = "teachers"
    payload_suffix = ".pt"
    warning = TeacherCacheWarning
    kind = "teacher"
    redo = "training the teacher"
    again = "trained"

    def load(self, key: TeacherKey, expected: Mapping[str, torch.Tensor]) -> CachedTeacher | None:
        """The verified entry of ``key``, or ``None`` when there is none or it does not verify.

        Parameters
        ----------
        key : TeacherKey
        expected : mapping of str to torch.Tensor
            A state_dict of the architecture (e.g. the initial one): the entry must have the
            same names, shapes and dtypes.

        Warns
        -----
        TeacherCacheWarning
            When an entry exists but cannot be used (it names the file and the reason); the
            caller trains the teacher and :meth:`save` replaces the entry.
        """
        return self._load(key, lambda weights, meta: self._verified(key, weights, meta, expected))

    def _verified(
        self,
        key: TeacherKey,
        weights: Path,
        meta_path: Path,
        expected: Mapping[str, torch.Tensor],
    ) -> CachedTeacher:
        meta = read_metadata(meta_path, key.digest)
        inputs = meta.get("inputs")
        if not isinstance(inputs, dict) or canonical_json(_hashed(inputs)) != canonical_json(
            _hashed(key.inputs)
        ):
            raise UnusableEntry("it was stored for other training inputs than this teacher's")
        try:
            blob = weights.read_bytes()
        except OSError as exc:
            raise UnusableEntry(f"its weights cannot be read ({exc.strerror or exc})") from None
        if hashlib.sha256(blob).hexdigest() != meta.get("weights_sha256"):
            raise UnusableEntry("the weights' SHA-256 does not match the one recorded (damaged)")
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any failure to load means: do not use it
            raise UnusableEntry(f"torch cannot load it safely ({type(exc).__name__})") from None
        if not isinstance(state, dict) or not all(
            isinstance(v, torch.Tensor) for v in state.values()
        ):
            raise UnusableEntry("it does not hold a state_dict of tensors")
        want = {k: (tuple(v.shape), v.dtype) for k, v in expected.items()}
        have = {k: (tuple(v.shape), v.dtype) for k, v in state.items()}
        if want != have:
            raise UnusableEntry("its tensors do not fit the teacher's architecture")
        if not all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()):
            raise UnusableEntry("it holds non-finite weights")
        training = meta.get("training")
        if not isinstance(training, dict):
            raise UnusableEntry("its metadata has no training record")
        training = {k: math.nan if v is None else v for k, v in training.items()}
        return CachedTeacher(state=state, training=training, path=weights)

    def save(
        self, key: TeacherKey, state: Mapping[str, torch.Tensor], training: Mapping[str, Any]
    ) -> Path | None:
        """Store a trained teacher under ``key`` (atomically); return its ``.pt`` file.

        A folder that cannot be written costs only the reuse: :class:`TeacherCacheWarning`
        says so and ``None`` is returned; the sweep goes on.
        """
        weights, _ = self.paths(key)
        state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
        return self._store(
            key,
            lambda tmp: torch.save(state, tmp),
            lambda: {
                "key": key.digest,
                "inputs": key.inputs,
                "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
                "training": {k: _finite_or_none(v) for k, v in training.items()},
            },
        )


def _finite_or_none(value: Any) -> Any:
    """JSON has no NaN: a non-finite float of the record is stored as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
