"""The hypothesis plugins that ship with kdtheory.

Each module holds one :class:`kdtheory.hypothesis.Hypothesis`:

- ``data-efficiency`` (:mod:`.data_efficiency`): KD's gain over label training grows as data
  shrinks;
- ``label-smoothing`` (:mod:`.label_smoothing`): KD is label smoothing in disguise;
- ``dark-knowledge`` (:mod:`.dark_knowledge`): the student learns from the teacher's wrong-class
  probabilities;
- ``neural-collapse`` (:mod:`.neural_collapse`): KD students collapse less and align more with the
  teacher;
- ``fidelity-decay`` (:mod:`.fidelity_decay`): the train/test fidelity gap decays like
  ``kappa**-1/2``.

Each is a :class:`kdtheory.hypothesis.template.PooledHypothesis` with its report sections next to
it. They register through the same ``kdtheory_register_hypotheses`` hook (and the same
``kdtheory`` entry-point group) a third-party package uses, and are built from the same public
toolkit (:mod:`kdtheory.hypothesis.toolkit`).
"""

from __future__ import annotations

from typing import Any

from kdtheory import hookimpl

__all__ = ["kdtheory_register_hypotheses"]


@hookimpl
def kdtheory_register_hypotheses() -> list[Any]:
    """The five built-in hypotheses."""
    from kdtheory.hypotheses.dark_knowledge import DarkKnowledge
    from kdtheory.hypotheses.data_efficiency import DataEfficiency
    from kdtheory.hypotheses.fidelity_decay import FidelityDecay
    from kdtheory.hypotheses.label_smoothing import LabelSmoothing
    from kdtheory.hypotheses.neural_collapse import NeuralCollapse

    return [DataEfficiency(), LabelSmoothing(), DarkKnowledge(), NeuralCollapse(), FidelityDecay()]
