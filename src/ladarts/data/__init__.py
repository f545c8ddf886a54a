"""Datasets for search and training: CIFAR-10 (local files, read safely), scikit-learn digits, synthetic."""

from ladarts.data.datasets import (
    CIFAR_MEAN,
    CIFAR_STD,
    DATASETS,
    ImageDataset,
    augment_batch,
    load_dataset,
    split_search,
    subset,
)

__all__ = ["CIFAR_MEAN", "CIFAR_STD", "DATASETS", "ImageDataset", "augment_batch", "load_dataset", "split_search",
           "subset"]
