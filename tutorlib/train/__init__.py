"""The training loop (`Trainer`/`fit`), callbacks, metrics, atomic checkpoints and DDP support.

>>> from tutorlib.train import Trainer, fit, EarlyStopping, accuracy, f1_score, confusion_matrix
"""

from tutorlib.train.callbacks import Callback, Checkpointing, EarlyStopping, NonFiniteGuard, PrintLogger
from tutorlib.train.checkpoint import CheckpointError, latest_checkpoint, load_checkpoint, save_checkpoint
from tutorlib.train.distributed import dist_info, is_main_process, shutdown_distributed
from tutorlib.train.evaluation import evaluate, model_device, predict
from tutorlib.train.metrics import accuracy, confusion_matrix, f1_score, precision_recall_f1
from tutorlib.train.trainer import PRECISIONS, History, NonFiniteLossError, Trainer, fit

__all__ = [
    "Trainer", "fit", "History", "NonFiniteLossError", "PRECISIONS", "Callback", "EarlyStopping", "PrintLogger", "Checkpointing",
    "NonFiniteGuard",
    "save_checkpoint", "load_checkpoint", "latest_checkpoint", "CheckpointError", "accuracy", "f1_score",
    "confusion_matrix", "precision_recall_f1", "dist_info", "is_main_process", "shutdown_distributed", "evaluate",
    "predict", "model_device",
]
