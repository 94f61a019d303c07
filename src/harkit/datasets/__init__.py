"""Datasets: readers of raw archives on top of shared windowing, splitting, normalisation and caching."""

from harkit.datasets.base import UNLABELLED, Dataset, Recording, Windows, sensor_groups
from harkit.datasets.download import default_cache_dir, default_data_dir, locate
from harkit.datasets.pipeline import PrepareConfig, Prepared, prepare
from harkit.datasets.registry import get_dataset, list_datasets, register_dataset
from harkit.datasets.splits import SubjectSplit

__all__ = [
    "UNLABELLED",
    "Dataset",
    "PrepareConfig",
    "Prepared",
    "Recording",
    "SubjectSplit",
    "Windows",
    "default_cache_dir",
    "default_data_dir",
    "get_dataset",
    "list_datasets",
    "locate",
    "prepare",
    "register_dataset",
    "sensor_groups",
]
