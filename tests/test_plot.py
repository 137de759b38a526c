"""kdtheory.report.figures: every figure on small synthetic stores, the paper style, colours and
saving.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import xarray as xr
from helpers import SMALL
from matplotlib.figure import Figure
from matplotlib.text import Text

from kdtheory.errors import MissingRequirementError
from kdtheory.plugin.manager import get_registries
from kdtheory.report import figures as plot
from kdtheory.testing.synthetic import make_store


def add_temperatures(ds: xr.Dataset, temps=(1.0, 2.0)) -> xr.Dataset:
    """``ds`` with copies of its kd-T4 method at other temperatures (slightly perturbed)."""
    rng = np.random.default_rng(0)
    parts = [ds]
    for t in temps:
        new = ds.sel({"arm": ["kd-T4"]}).assign_coords(arm=[f"kd-T{t:g}"])
        new = new.assign_coords(temperature=("arm", [t]))
        noise = rng.normal(0.0, 0.5, new["test_logits"].shape).astype(np.float32)
        new["test_logits"] = new["test_logits"] + noise
        parts.append(new[[v for v in new.data_vars if "arm" in new[v].dims]])
    return xr.concat(parts, dim="arm", data_vars="minimal", coords="minimal", compat="override")


@pytest.fixture(scope="module")
def store():
    return make_store(2, seed=5, **SMALL)


@pytest.fixture(scope="module")
def one():
    return make_store(1, seed=6, **SMALL)


def _texts(fig: Figure) -> list[Text]:
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


def _drawn_ticklabels(axis) -> list[Text]:
    """Major tick labels inside the view interval (matplotlib keeps stale ones outside it)."""
    lo, hi = sorted(axis.get_view_interval())
    return [
        lab
        for loc, lab in zip(axis.get_majorticklocs(), axis.get_ticklabels(), strict=False)
        if lo <= loc <= hi and lab.get_visible() and lab.get_text()
    ]


@pytest.mark.parametrize("name", [n for n in get_registries().figures if n != "temperature"])
def test_every_plot_returns_a_paper_figure(one, name):
    fig = get_registries().figures.get(name).draw(one)
    assert isinstance(fig, Figure)
    w, h = fig.get_size_inches()
    assert w == pytest.approx(plot.FIGURE_WIDTH), "one experiment: a single-column figure"
    assert h <= 9.0
    axes = [ax for ax in fig.get_axes() if ax.get_visible()]
    assert axes
    kappa_axes = [ax for ax in axes if ax.get_xlabel() == plot.KAPPA_LABEL]
    assert kappa_axes, "every figure plots against kappa"
    assert all(ax.get_xscale() == "log" for ax in kappa_axes)
    assert all(ax.get_ylabel() for ax in axes), "one column: every panel names its quantity"
    # readable at single-column width: no text below 7 pt
    assert min(t.get_fontsize() for t in _texts(fig)) >= 7
    assert fig.legends, "a shared legend names the methods"


def test_layout_has_no_overlaps_and_nothing_outside(store, one):
    """What a reviewer would object to: tick labels running into each other, a legend or label
    cut off at the figure's edge."""
    for fig in (plot.accuracy_curves(store), plot.fidelity(one)):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        bbox = fig.bbox
        ticks = {
            id(t) for ax in fig.get_axes() for a in (ax.xaxis, ax.yaxis) for t in a.get_ticklabels()
        }
        drawn = [
            t for ax in fig.get_axes() for a in (ax.xaxis, ax.yaxis) for t in _drawn_ticklabels(a)
        ]
        for t in [t for t in _texts(fig) if id(t) not in ticks] + drawn:
            ext = t.get_window_extent(renderer)
            assert ext.x0 >= bbox.x0 - 1 and ext.x1 <= bbox.x1 + 1, t.get_text()
            assert ext.y0 >= bbox.y0 - 1 and ext.y1 <= bbox.y1 + 1, t.get_text()
        for leg in fig.legends:
            ext = leg.get_window_extent(renderer)
            assert ext.x0 >= bbox.x0 - 1 and ext.x1 <= bbox.x1 + 1
        for ax in fig.get_axes():
            for axis in (ax.xaxis, ax.yaxis):
                labels = [lab.get_window_extent(renderer) for lab in _drawn_ticklabels(axis)]
                for a, b in itertools.combinations(labels, 2):
                    assert not a.overlaps(b), f"tick labels overlap on {ax.get_ylabel()!r}"


def test_colours_are_one_per_method_and_the_same_in_every_figure(store):
    names = {"label", "kd-T4", "ls", "kd-shuffled-T4"}

    def colours(fig):
        out = {}
        for ax in fig.get_axes():
            for line in ax.get_lines():
                if line.get_label() in names:
                    out[line.get_label()] = matplotlib.colors.to_hex(line.get_color())
        return out

    acc = colours(plot.accuracy_curves(store))
    col = colours(plot.collapse(store))
    rank = colours(plot.rank_correlation(store))
    assert set(acc) == names
    assert acc == col == rank
    assert len(set(acc.values())) == len(acc)
    for m, c in acc.items():
        assert c.upper() == plot.METHOD_COLORS[m].upper()
        assert c.upper() in {v.upper() for v in plot.OKABE_ITO.values()}


def test_palette_gives_distinct_colours_to_extra_methods():
    methods = ["label", "kd-T4", "kd-T1", "kd-T2", "kd-T8", "ls", "ls-e0.1", "kd-shuffled-T4"]
    pal = plot.method_palette(methods)
    assert len(set(pal.values())) == len(methods)
    assert pal["kd-T4"] == plot.METHOD_COLORS["kd-T4"]
    assert pal == plot.method_palette(reversed(methods)), "independent of order"
    assert plot.color_for("kd-T4") == plot.METHOD_COLORS["kd-T4"]
    assert plot.color_for("kd-T2", pal) == pal["kd-T2"]
    assert plot.marker_for("kd-T2") == plot.marker_for("kd-T4")


def test_paper_style_is_a_scoped_context():
    before = matplotlib.rcParams["font.size"]
    with plot.paper_style(**{"font.size": 9}):
        assert matplotlib.rcParams["font.size"] == 9
        assert matplotlib.rcParams["pdf.fonttype"] == 42
    assert matplotlib.rcParams["font.size"] == before


def test_save_writes_vector_pdf_and_png(one, tmp_path):
    fig = plot.accuracy_curves(one)
    paths = plot.save(fig, tmp_path / "acc.pdf")
    assert [p.name for p in paths] == ["acc.pdf", "acc.png"]
    assert paths[0].read_bytes()[:4] == b"%PDF"
    png = paths[1].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width = int.from_bytes(png[16:20], "big")
    assert width == pytest.approx(plot.FIGURE_WIDTH * 150, abs=2)
    with pytest.raises(ValueError, match="cannot write"):
        plot.save_as(fig, tmp_path / "acc.xyz")


def test_kd_gain_draws_the_verdict_slope_and_multiplier(one):
    from kdtheory.hypothesis.family import run_test

    verdict = run_test("data-efficiency", one)
    fig = plot.kd_gain(one, verdict)
    ax_gain, ax_mult = fig.get_axes()[:2]
    assert any(line.get_linestyle() == ":" for line in ax_gain.get_lines()), "fitted slope"
    assert "slope" in ax_gain.get_title()
    assert ax_mult.get_yscale() == "log"
    assert "multiplier" in ax_mult.get_ylabel().lower()


def test_fidelity_has_reference_slope_and_log_axes(one):
    fig = plot.fidelity(one)
    ax_gap = fig.get_axes()[1]
    assert ax_gap.get_xscale() == ax_gap.get_yscale() == "log"
    labels = [h.get_text() for leg in fig.legends for h in leg.get_texts()]
    assert any("−1/2" in s for s in labels)
    assert any("power-law" in s for s in labels)


def test_temperature_effects_need_several_temperatures(one):
    with pytest.raises(MissingRequirementError, match="temperature"):
        plot.temperature_effects(one)
    multi = {k: add_temperatures(ds) for k, ds in one.items()}
    fig = plot.temperature_effects(multi)
    labels = [h.get_text() for leg in fig.legends for h in leg.get_texts()]
    assert {"kd-T1 (T=1)", "kd-T2 (T=2)", "kd-T4 (T=4)"} <= set(labels)
    ax_t = fig.get_axes()[1]
    assert ax_t.get_xlabel().startswith("KD temperature")


def test_collapse_without_features_says_what_is_missing(one):
    bare = {
        k: ds.drop_vars(["features", "teacher_features", "classifier_weight"])
        for k, ds in one.items()
    }
    with pytest.raises(MissingRequirementError, match="features"):
        plot.collapse(bare)
    with pytest.raises(ValueError, match="unknown collapse metric"):
        plot.collapse(one, metrics=["nc9"])


def test_experiments_can_be_selected(store):
    fig = plot.accuracy_curves(store, experiments=["synthetic-1"])
    (title,) = [ax.get_title() for ax in fig.get_axes() if ax.get_visible()]
    assert title.replace("\n", " ").endswith("(synthetic-1)")  # same models: told apart by id
    with pytest.raises(Exception, match="no experiment"):
        plot.accuracy_curves(store, experiments=["nope"])


def _titled(store, titles):
    return {name: ds.assign_attrs(title=titles[name]) for name, ds in store.items()}


@pytest.mark.parametrize(
    "draw",
    [
        plot.accuracy_curves,
        plot.kd_gain,
        plot.method_gaps,
        plot.fidelity,
        plot.rank_correlation,
        plot.collapse,
        lambda s: plot.temperature_effects({k: add_temperatures(v) for k, v in s.items()}),
    ],
)
def test_panels_are_titled_with_display_labels_not_ids(store, draw):
    titled = _titled(store, {"synthetic-0": "Planted gain A", "synthetic-1": "Planted gain B"})
    texts = [t.get_text() for t in _texts(draw(titled))]
    for label in ("Planted gain A", "Planted gain B"):
        assert sum(label in t for t in texts) == 1, texts
    assert not any("synthetic-0" in t or "synthetic-1" in t for t in texts)


def test_shipped_experiments_show_readable_titles():
    import kdtheory

    data = Path(__file__).resolve().parents[1] / "data"
    fig = plot.accuracy_curves(kdtheory.open_runs(data))
    titles = [ax.get_title().replace("\n", " ") for ax in fig.get_axes() if ax.get_visible()]
    assert titles == [
        "MNIST-5k · CNN 32→8",
        "MNIST-5k · ViT→ViT 32",
        "MNIST-1D n=4000 · CNN 64→MLP 128",
    ]


def test_mean_band_is_the_t_interval_and_mean_se_one_standard_error():
    from scipy.stats import t

    from kdtheory.report.figures import mean_band, mean_se

    v = np.random.default_rng(0).normal(size=(4, 3))
    v[0, 1] = np.nan
    v[1, :2] = np.nan
    mean, low, high, n = mean_band(v, level=0.9)
    _, se_low, se_high, _ = mean_se(v)
    assert list(n) == [2, 1, 3, 3]
    for i, row in enumerate(v):
        x = row[np.isfinite(row)]
        if x.size < 2:
            assert np.isnan(high[i]) and np.isnan(se_high[i])
            continue
        se = x.std(ddof=1) / np.sqrt(x.size)
        assert high[i] - mean[i] == pytest.approx(t.ppf(0.95, x.size - 1) * se)
        assert (se_high[i] - mean[i], mean[i] - se_low[i]) == pytest.approx((se, se))
