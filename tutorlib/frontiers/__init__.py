"""Lesson 13, frontier techniques: long-context attention, mixture of experts, ensembles, adversarial robustness,
fairness metrics, differential privacy and federated averaging.

Each submodule has one job; everything public is re-exported here.

>>> from tutorlib.frontiers import sliding_window_mask, top_k_routing, fgsm, equalized_odds_gap, clip_per_sample, fedavg
"""

from tutorlib.frontiers.adversarial import accuracy_under_attack, adversarial_step_fn, fgsm, pgd
from tutorlib.frontiers.attention import (bigbird_layout, block_layout_from_mask, block_sparse_attention,
                                          block_sparse_mask, expand_layout, full_mask, mask_density, masked_attention,
                                          sliding_window_mask)
from tutorlib.frontiers.ensembles import EnsembleResult, average_probs, default_classifiers, fit_ensemble, majority_vote
from tutorlib.frontiers.fairness import (demographic_parity_gap, equalized_odds_gap, group_metrics, reweighing_weights,
                                         skew_groups)
from tutorlib.frontiers.features import embed_texts
from tutorlib.frontiers.federated import FedHistory, fedavg, federated_train, iid_split, label_skew_split
from tutorlib.frontiers.measure import ATTENTION_VARIANTS, measure_attention
from tutorlib.frontiers.moe import (DenseFFN, MoELayer, dense_gpt, expert_counts, lm_step_fn, load_balancing_loss,
                                    moe_aux_loss, moe_gpt, top_k_routing)
from tutorlib.frontiers.privacy import (DEFAULT_ORDERS, clip_per_sample, dp_epsilon, dp_sgd_step_fn, per_sample_grads,
                                        per_sample_grads_loop, privatize, rdp_subsampled_gaussian, rdp_to_epsilon)

__all__ = [
    "full_mask", "sliding_window_mask", "block_sparse_mask", "bigbird_layout", "block_layout_from_mask", "expand_layout",
    "masked_attention", "block_sparse_attention", "mask_density",
    "measure_attention", "ATTENTION_VARIANTS",
    "top_k_routing", "load_balancing_loss", "MoELayer", "DenseFFN", "moe_gpt", "dense_gpt", "moe_aux_loss",
    "expert_counts", "lm_step_fn",
    "average_probs", "majority_vote", "default_classifiers", "fit_ensemble", "EnsembleResult",
    "fgsm", "pgd", "accuracy_under_attack", "adversarial_step_fn",
    "group_metrics", "demographic_parity_gap", "equalized_odds_gap", "reweighing_weights", "skew_groups",
    "per_sample_grads", "per_sample_grads_loop", "clip_per_sample", "privatize", "dp_sgd_step_fn",
    "rdp_subsampled_gaussian", "rdp_to_epsilon", "dp_epsilon", "DEFAULT_ORDERS",
    "fedavg", "iid_split", "label_skew_split", "federated_train", "FedHistory",
    "embed_texts",
]
