"""Tools for testing hypotheses: planted-truth synthetic stores and the calibration harness."""
