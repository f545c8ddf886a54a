"""Training a found genotype with the DARTS evaluation protocol, and exporting it to ONNX."""

from ladarts.train.export import export_and_check, perturb_
from ladarts.train.protocol import DATASET_DEFAULTS, TrainConfig
from ladarts.train.trainer import TrainResult, evaluate, load_trained, run_train

__all__ = ["DATASET_DEFAULTS", "TrainConfig", "TrainResult", "evaluate", "export_and_check", "load_trained",
           "perturb_", "run_train"]
