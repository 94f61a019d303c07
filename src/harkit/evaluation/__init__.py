"""Metrics, latency, plots and reports of trained runs."""
