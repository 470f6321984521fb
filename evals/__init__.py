"""Evaluation: gold dataset, fidelity metrics, side-by-side runs and the CI gate."""
