"""Regularization and generalization (lesson 02): penalties, dropout, augmentation, label smoothing, sweeps.

>>> from tutorlib.regularize import l1_penalty, dropout, DigitAugment, smooth_targets, RegConfig, sweep
"""
from tutorlib.regularize.augment import (AugmentedDataset, DigitAugment, TextAugment, add_noise, random_rotate,
                                         random_shift, rotate_image, shift_image, token_dropout, word_swap)
from tutorlib.regularize.dropout import Dropout, dropout
from tutorlib.regularize.penalties import RegularizedLoss, l1_penalty, l2_penalty, penalized_parameters
from tutorlib.regularize.smoothing import label_smoothing_loss, smooth_targets
from tutorlib.regularize.sweeps import (RegConfig, RunResult, TrainMetrics, dropout_sweep, plot_curves,
                                        plot_gap_summary, plot_overfitting, plot_weight_histograms, sweep,
                                        train_regularized, weight_values)
from tutorlib.regularize.text import TextCNN

__all__ = [
    "AugmentedDataset", "DigitAugment", "TextAugment", "add_noise", "random_rotate", "random_shift", "rotate_image",
    "shift_image", "token_dropout", "word_swap", "Dropout", "dropout", "RegularizedLoss", "l1_penalty", "l2_penalty",
    "penalized_parameters", "label_smoothing_loss", "smooth_targets", "RegConfig", "RunResult", "TrainMetrics",
    "dropout_sweep", "plot_curves", "plot_gap_summary", "plot_overfitting", "plot_weight_histograms", "sweep",
    "train_regularized", "weight_values", "TextCNN",
]
