"""Evaluation and metrics: the local evaluate modules (metrics/), loading and splitting their results,
metric logging to files and trackers, and the plots of a run."""
