"""Offline half: losses, task weighting, trainer, export and the paper's experiments."""
