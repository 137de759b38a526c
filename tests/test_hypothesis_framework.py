"""The Hypothesis framework: requirements, options, run_test, run_all (Holm family), registry."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pluggy
import pytest
import xarray as xr

import kdtheory
from kdtheory.errors import (
    DuplicateNameError,
    MissingRequirementError,
    SpecError,
    StoreError,
    UnknownNameError,
)
from kdtheory.hypothesis.base import Hypothesis, describe_all, get_hypothesis
from kdtheory.hypothesis.family import adjust_family, run_all, run_test
from kdtheory.hypothesis.verdict import Verdict
from kdtheory.plugin import hookspecs
from kdtheory.plugin import manager as plugin_manager

EXAMPLE_PLUGIN = Path(__file__).parent / "example_plugin"

METHODS = {  # objective -> (method label, temperature, alpha, smoothing)
    "label": ("label", np.nan, 1.0, np.nan),
    "kd": ("kd-T4", 4.0, 0.0, np.nan),
    "ls": ("ls", np.nan, 1.0, 0.1),
    "kd-shuffled": ("kd-shuffled-T4", 4.0, 0.0, np.nan),
}


def make_experiment(
    exp_id: str = "exp_a",
    objectives: tuple[str, ...] = ("label", "kd"),
    accuracy: dict[str, float] | None = None,
    seeds: int = 4,
    fractions: tuple[float, ...] = (0.25, 0.5, 1.0),
    n_train: int = 40,
    n_test: int = 60,
    n_class: int = 3,
    features: bool = False,
    rng_seed: int = 0,
) -> xr.Dataset:
    """A small schema-v1 experiment whose students reach the planted test accuracies."""
    rng = np.random.default_rng(rng_seed)
    accuracy = accuracy or {"label": 0.5, "kd": 0.8, "ls": 0.5, "kd-shuffled": 0.6}
    methods = [METHODS[o][0] for o in objectives]
    test_labels = rng.integers(0, n_class, n_test)
    train_labels = rng.integers(0, n_class, n_train)
    shape = (len(objectives), len(fractions), seeds)

    def logits(labels: np.ndarray, acc: np.ndarray) -> np.ndarray:
        out = rng.normal(0, 0.1, shape + (labels.size, n_class))
        correct = rng.random(shape + (labels.size,)) < acc[:, None, None, None]
        wrong = (labels + 1) % n_class
        winner = np.where(correct, labels, wrong)
        np.put_along_axis(out, winner[..., None], 5.0, axis=-1)
        return out.astype("float32")

    acc = np.array([accuracy[o] for o in objectives])
    in_train = np.zeros((len(fractions), seeds, n_train), bool)
    for s in range(seeds):
        order = rng.permutation(n_train)
        for i, f in enumerate(fractions):
            in_train[i, s, order[: int(round(f * n_train))]] = True
    coords = {
        "arm": methods,
        "fraction": list(fractions),
        "seed": list(range(seeds)),
        "train_sample": np.arange(n_train),
        "test_sample": np.arange(n_test),
        "class": np.arange(n_class),
        "objective": ("arm", list(objectives)),
        "temperature": ("arm", [METHODS[o][1] for o in objectives]),
        "alpha": ("arm", [METHODS[o][2] for o in objectives]),
        "smoothing": ("arm", [METHODS[o][3] for o in objectives]),
        "n_train": ("fraction", [int(round(f * n_train)) for f in fractions]),
    }
    dims5 = ("arm", "fraction", "seed")
    data = {
        "test_logits": (dims5 + ("test_sample", "class"), logits(test_labels, acc)),
        "train_logits": (dims5 + ("train_sample", "class"), logits(train_labels, acc)),
        "in_train": (("fraction", "seed", "train_sample"), in_train),
        "teacher_test_logits": (("test_sample", "class"), rng.normal(size=(n_test, n_class))),
        "teacher_train_logits": (("train_sample", "class"), rng.normal(size=(n_train, n_class))),
        "test_labels": (("test_sample",), test_labels.astype("int64")),
        "train_labels": (("train_sample",), train_labels.astype("int64")),
    }
    if features:
        coords["feature_sample"] = np.arange(0, n_train, 4)
        n_fs = coords["feature_sample"].size
        data["features"] = (
            dims5 + ("feature_sample", "feature"),
            rng.normal(size=shape + (n_fs, 5)),
        )
        data["teacher_features"] = (
            ("feature_sample", "teacher_feature"),
            rng.normal(size=(n_fs, 6)),
        )
    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update(
        schema="kdtheory-runs/2",
        experiment=exp_id,
        dataset="toy",
        teacher="mlp",
        student="mlp",
        recipe="{}",
        kdtheory_version=kdtheory.__version__,
        created="2025-01-01T00:00:00",
        storage_dtype="float32",
    )
    return ds


class Fixed(Hypothesis):
    """A hypothesis returning a preset verdict (exercises the framework, not statistics)."""

    name = "fixed"
    claim = "A fixed claim."
    prediction = "A fixed prediction."
    required_objectives = ("label", "kd")
    options = {"shift": 0.0, "label": "x", "flag": False, "levels": (1, 2)}

    def __init__(
        self,
        name: str = "fixed",
        p: float = 0.01,
        decision: str = "supported",
        objectives: tuple[str, ...] = ("label", "kd"),
        variables: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.p = p
        self.fixed_decision = decision
        self.required_objectives = objectives
        self.required_variables = variables
        self.calls: list[dict] = []

    def test(self, store, alpha=0.05, **options):
        self.calls.append({"alpha": alpha, **options})
        return Verdict(
            hypothesis=self.name,
            claim=self.claim,
            prediction=self.prediction,
            decision=self.fixed_decision,
            alpha=alpha,
            effect="e",
            estimate=1.0 + options.get("shift", 0.0),
            ci=(0.5, 1.5),
            p_value=self.p,
            model="fixed",
            reason="Because.",
        )


def registries_with(*hypotheses, monkeypatch) -> plugin_manager.Registries:
    """Registries holding only ``hypotheses`` (one pluggy plugin), installed process-wide."""
    pm = pluggy.PluginManager("kdtheory")
    pm.add_hookspecs(hookspecs)

    class Plugin:
        @kdtheory.hookimpl
        def kdtheory_register_hypotheses(self):
            return list(hypotheses)

    pm.register(Plugin(), name="testplugin")
    regs = plugin_manager.build_registries(pm)
    monkeypatch.setattr(plugin_manager, "get_registries", lambda: regs)
    return regs


@pytest.fixture
def store():
    return {"exp_a": make_experiment("exp_a"), "exp_b": make_experiment("exp_b", rng_seed=1)}


# ----------------------------------------------------------------------------- requirements


def test_dataset_builder_meets_the_schema():
    from kdtheory.store.schema import validate_experiment

    validate_experiment(make_experiment(objectives=("label", "kd", "ls"), features=True))


def test_check_requirements_names_experiment_objective_and_run_command(store):
    hyp = Fixed(objectives=("label", "kd", "ls"), variables=("features",))
    hyp.run_hint = "label,kd:T=4,ls:eps=matched"
    store["exp_c"] = make_experiment("exp_c", objectives=("label", "kd", "ls"), features=True)
    with pytest.raises(MissingRequirementError) as info:
        hyp.check_requirements(store)
    msg = str(info.value)
    assert "'exp_a'" in msg and "'exp_b'" in msg and "'exp_c'" not in msg
    assert "objective 'ls'" in msg and "objectives present: kd, label" in msg
    assert "variable(s) 'features'" in msg
    assert "kdtheory run --methods label,kd:T=4,ls:eps=matched" in msg
    assert set(hyp.missing_requirements(store)) == {"exp_a", "exp_b"}
    hyp.check_requirements({"exp_c": store["exp_c"]})  # met: no error


def test_check_requirements_without_objective_coordinate_and_empty_store():
    ds = make_experiment().drop_vars("objective")
    with pytest.raises(MissingRequirementError, match="objectives present: none"):
        Fixed().check_requirements({"x": ds})
    with pytest.raises(MissingRequirementError, match="kdtheory run --methods"):
        Fixed().check_requirements({})


def test_describe_is_json_safe():
    info = Fixed(objectives=("label", "kd"), variables=("features",)).describe()
    assert info["name"] == "fixed" and info["claim"] == "A fixed claim."
    assert info["needs"] == {"objectives": ["label", "kd"], "variables": ["features"]}
    assert info["options"]["shift"] == 0.0
    json.dumps(info)


# ----------------------------------------------------------------------------- options


def test_options_are_validated_and_coerced():
    hyp = Fixed()
    out = hyp.validate_options({"shift": "0.5", "label": "y", "flag": "yes", "levels": "3,4"})
    assert out == {"shift": 0.5, "label": "y", "flag": True, "levels": (3, 4)}
    assert hyp.validate_options({"shift": 2}) == {"shift": 2}  # non-strings pass through
    with pytest.raises(SpecError) as info:
        hyp.validate_options({"shfit": 1.0})
    msg = str(info.value)
    assert "'shfit'" in msg and "Did you mean 'shift'" in msg
    assert "Accepted options: flag, label, levels, shift" in msg
    with pytest.raises(SpecError, match="cannot read 'abc' as float"):
        hyp.validate_options({"shift": "abc"})


# ----------------------------------------------------------------------------- run_test


def test_run_test_checks_requirements_before_testing(store):
    hyp = Fixed(objectives=("label", "ls"))
    with pytest.raises(MissingRequirementError):
        run_test(hyp, store)
    assert hyp.calls == []  # test() never ran


def test_run_test_passes_alpha_and_coerced_options(store):
    hyp = Fixed()
    v = run_test(hyp, store, alpha=0.01, shift="0.25")
    assert hyp.calls == [{"alpha": 0.01, "shift": 0.25}]
    assert v.estimate == 1.25 and v.p_adjusted is None and v.family == []
    with pytest.raises(SpecError, match="no option 'bogus'"):
        run_test(hyp, store, bogus=1)
    with pytest.raises(SpecError, match="alpha"):
        run_test(hyp, store, alpha=0.9)
    with pytest.raises(StoreError):
        run_test(hyp, {})


def test_run_test_by_name_and_did_you_mean(store, monkeypatch):
    hyp = Fixed("dark-knowledge")
    registries_with(hyp, Fixed("label-smoothing"), monkeypatch=monkeypatch)
    assert get_hypothesis("dark-knowledge") is hyp
    assert run_test("dark-knowledge", store).hypothesis == "dark-knowledge"
    with pytest.raises(UnknownNameError) as info:
        run_test("dark-knowlege", store)
    assert "Did you mean 'dark-knowledge'" in str(info.value)
    names = [d["name"] for d in describe_all()]
    assert names == ["dark-knowledge", "label-smoothing"]
    assert describe_all()[0]["source"] == "testplugin"


def test_run_test_rejects_a_non_verdict(store):
    class Broken(Fixed):
        def test(self, store, alpha=0.05, **options):
            return {"decision": "supported"}

    with pytest.raises(TypeError, match="must return a kdtheory.hypothesis.verdict.Verdict"):
        run_test(Broken(), store)


def test_run_test_opens_a_path(tmp_path):
    make_experiment("exp_file").to_netcdf(tmp_path / "exp_file.nc")
    v = run_test(Fixed(), str(tmp_path))
    assert v.decision == "supported"


def test_example_plugin_hypothesis_finds_the_planted_gain(store, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE_PLUGIN))
    from kdtheory_example import KDGain

    v = run_test(KDGain(), store)
    assert v.decision == "supported"
    assert v.estimate == pytest.approx(30.0, abs=10.0)  # planted: 80% - 50%, in points
    assert v.pooled is not None and v.pooled.n == 2
    assert [r.label for r in v.experiments] == ["exp_a", "exp_b"]
    reversed_store = {"e": make_experiment("e", accuracy={"label": 0.9, "kd": 0.4})}
    assert run_test(KDGain(), reversed_store).decision == "rejected"
    with pytest.raises(SpecError, match="Accepted options: kd_method, min_fraction"):
        run_test(KDGain(), store, min_frac="0.5")
    v_half = run_test(KDGain(), store, min_fraction="0.5")
    assert v_half.decision == "supported"


# ----------------------------------------------------------------------------- run_all


def test_run_all_holm_family_and_unavailable(store, monkeypatch):
    strong = Fixed("a-strong", p=0.001)
    weak = Fixed("b-weak", p=0.03)  # significant alone, not after Holm (0.03 * 2 = 0.06)
    rejected = Fixed("c-rejected", p=0.2, decision="rejected")
    needs_ls = Fixed("d-needs-ls", objectives=("label", "ls"))
    registries_with(needs_ls, weak, strong, rejected, monkeypatch=monkeypatch)
    out = run_all(store, alpha=0.05)
    assert [v.hypothesis for v in out] == ["a-strong", "b-weak", "c-rejected", "d-needs-ls"]
    by = {v.hypothesis: v for v in out}
    # Holm over the three p-values [0.001, 0.03, 0.2]: 0.003, 0.06, 0.2
    assert by["a-strong"].p_adjusted == pytest.approx(0.003)
    assert by["b-weak"].p_adjusted == pytest.approx(0.06)
    assert by["c-rejected"].p_adjusted == pytest.approx(0.2)
    assert by["a-strong"].decision == "supported"
    assert by["b-weak"].decision == "inconclusive"
    assert "Holm" in by["b-weak"].reason and "0.06" in by["b-weak"].reason
    assert by["b-weak"].p_value == 0.03  # the unadjusted p-value is kept
    assert by["c-rejected"].decision == "rejected"
    unavailable = by["d-needs-ls"]
    assert unavailable.decision == "inconclusive" and unavailable.p_adjusted is None
    assert math.isnan(unavailable.estimate)
    assert "kdtheory run --methods" in unavailable.reason
    assert by["a-strong"].family == ["a-strong", "b-weak", "c-rejected"]
    assert needs_ls.calls == []


def test_run_all_routes_options_and_rejects_unknown(store, monkeypatch):
    class NoOptions(Fixed):
        options = {}

    plain = NoOptions("plain")
    shifty = Fixed("shifty")
    registries_with(plain, shifty, monkeypatch=monkeypatch)
    run_all(store, shift="1.5")
    assert plain.calls == [{"alpha": 0.05}]
    assert shifty.calls == [{"alpha": 0.05, "shift": 1.5}]
    with pytest.raises(SpecError, match="no hypothesis accepts option"):
        run_all(store, nonsense=1)
    assert [v.hypothesis for v in run_all(store, only=["shifty"])] == ["shifty"]


def test_custom_decide_is_used():
    class Strict(Fixed):
        def decide(self, verdict, p_adjusted):
            if verdict.decision == "rejected" and p_adjusted > verdict.alpha:
                return "inconclusive", "rejection did not survive Holm"
            return super().decide(verdict, p_adjusted)

    v1 = Fixed("x", p=0.03, decision="rejected").test({})
    v2 = Fixed("y", p=0.2, decision="inconclusive").test({})
    out = adjust_family([v1, v2], [Strict("x"), Fixed("y")])  # Holm: 0.06, 0.2
    assert out[0].p_adjusted == pytest.approx(0.06)
    assert out[0].decision == "inconclusive" and out[0].reason == "rejection did not survive Holm"
    assert out[1].decision == "inconclusive" and out[1].p_adjusted == pytest.approx(0.2)
    assert v1.p_adjusted is None  # the inputs are not mutated
    default = adjust_family([v1, v2])  # the default rule leaves a rejection standing
    assert default[0].decision == "rejected" and default[0].reason == "Because."


# ----------------------------------------------------------------------------- plugin manager


def test_duplicate_hypothesis_names_error_naming_both_sources():
    pm = pluggy.PluginManager("kdtheory")
    pm.add_hookspecs(hookspecs)

    class One:
        @kdtheory.hookimpl
        def kdtheory_register_hypotheses(self):
            return [Fixed("same")]

    class Two:
        @kdtheory.hookimpl
        def kdtheory_register_hypotheses(self):
            return [Fixed("same")]

    pm.register(One(), name="plugin-one")
    pm.register(Two(), name="plugin-two")
    with pytest.raises(DuplicateNameError) as info:
        plugin_manager.build_registries(pm).hypotheses  # noqa: B018
    assert "'plugin-one'" in str(info.value) and "'plugin-two'" in str(info.value)
    assert "'same'" in str(info.value)


def test_example_module_is_not_left_importable():
    # the example plugin is only importable while a test puts it on sys.path
    assert str(EXAMPLE_PLUGIN) not in sys.path
