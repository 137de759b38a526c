import numpy as np

from kdtheory.training.subsets import feature_sample, stratified_order, subset, subset_size


def labels(n=300, k=5, seed=0):
    return np.random.default_rng(seed).integers(0, k, n)


def test_subsets_are_nested_across_fractions():
    y = labels()
    for seed in range(3):
        prev = set()
        for f in (0.01, 0.05, 0.1, 0.5, 1.0):
            cur = set(subset(y, f, seed).tolist())
            assert prev <= cur
            assert len(cur) == subset_size(f, len(y))
            prev = cur
        assert prev == set(range(len(y)))


def test_seeds_give_different_subsets_and_same_seed_same_subset():
    y = labels()
    assert not np.array_equal(subset(y, 0.1, 0), subset(y, 0.1, 1))
    assert np.array_equal(subset(y, 0.1, 4), subset(y, 0.1, 4))


def test_prefixes_are_class_balanced():
    y = labels(1000, 10)
    order = stratified_order(y, 0)
    counts = np.bincount(y[order[:50]], minlength=10)
    assert counts.min() >= 3 and counts.max() <= 7  # 5 each up to rounding


def test_feature_sample_contains_each_seeds_smallest_subset_and_unseen_rows():
    y = labels()
    idx = feature_sample(y, 0.05, [0, 1, 2], size=60)
    for seed in range(3):
        assert set(subset(y, 0.05, seed).tolist()) <= set(idx.tolist())
    assert len(idx) == 60
    assert np.all(np.diff(idx) > 0)
    smallest = subset(y, 0.05, 0)
    assert len(np.setdiff1d(idx, smallest)) > 0
