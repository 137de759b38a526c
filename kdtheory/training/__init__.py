"""Training: the sweep over (method, fraction, seed) cells, the batched engine and its kernels."""
