"""The run store: schema, reading and writing cells, atomic files, convergence checks.

Public API: :func:`open_runs`, :class:`RunStore`, :func:`export_store` (from
:mod:`kdtheory.store.runs`); :mod:`kdtheory.store.schema` states the contract,
:mod:`kdtheory.store.convergence` the convergence criteria, :mod:`kdtheory.store.atomic` the one
atomic writer every stage uses.
"""

from kdtheory._lazy import lazy_exports

__all__ = ["RunStore", "as_store", "export_store", "open_runs"]
__getattr__, __dir__ = lazy_exports(__name__, dict.fromkeys(__all__, ".runs"))
