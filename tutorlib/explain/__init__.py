"""Explainability (lesson 09): Shapley values, SHAP, LIME, integrated gradients, attention, agreement, faithfulness.

- :mod:`~tutorlib.explain.shapley`: exact Shapley values by enumeration (checked against ``shap``);
- :mod:`~tutorlib.explain.surrogate`: LIME from scratch (kernel, sampling, weighted ridge; checked against ``lime``);
- :mod:`~tutorlib.explain.gradients`: integrated gradients from scratch (checked against ``captum``);
- :mod:`~tutorlib.explain.text`: :func:`explain_text` for the MiniLM review classifier with
  ``method="shap" | "lime" | "ig" | "attention"``, all returning an :class:`Attribution`;
- :mod:`~tutorlib.explain.tabular`: SHAP plots and LIME stability on a breast-cancer model;
- :mod:`~tutorlib.explain.agreement` and :mod:`~tutorlib.explain.faithfulness`: rank agreement
  between methods and deletion curves;
- :mod:`~tutorlib.explain.widgets`: the explanation widget and the attention-map viewer.

Heavy libraries (shap, lime, captum) are imported only when a function needs them;
:func:`import_shap` imports shap without numba's start-up compile (see :mod:`tutorlib.explain._shap`).

>>> from tutorlib.explain import explain_text, Attribution, exact_shapley, deletion_curve, rank_agreement
"""

from tutorlib.explain._shap import import_shap
from tutorlib.explain.agreement import (agreement_matrix, kendall, mean_agreement, plot_agreement, rank_agreement,
                                        spearman, topk_overlap)
from tutorlib.explain.attribution import Attribution, attribution_html, plot_attributions
from tutorlib.explain.faithfulness import (DeletionCurve, deletion_auc, deletion_curve, deletion_curve_from_fn,
                                           faithfulness_table, plot_deletion_curves, random_deletion_curve,
                                           remove_tokens)
from tutorlib.explain.gradients import integrated_gradients, path_points
from tutorlib.explain.shapley import (TOY_FEATURES, coalition_values, coalitions, exact_shapley, shap_exact,
                                      shap_kernel, shapley_weight, toy_background, toy_model)
from tutorlib.explain.surrogate import (cosine_distances, fit_local_surrogate, lime_from_scratch, lime_kernel,
                                        sample_masks)
from tutorlib.explain.text import (METHODS, attention_maps, attention_rollout, encode, explain_attention, explain_ig,
                                   explain_lime, explain_many, explain_shap, explain_text, ids_prob_fn,
                                   load_review_classifier, predict_proba, train_review_classifier)

__all__ = [
    "Attribution", "attribution_html", "plot_attributions", "import_shap",
    "shapley_weight", "coalitions", "coalition_values", "exact_shapley", "toy_model", "toy_background",
    "TOY_FEATURES", "shap_exact", "shap_kernel",
    "lime_kernel", "fit_local_surrogate", "sample_masks", "cosine_distances", "lime_from_scratch",
    "integrated_gradients", "path_points",
    "METHODS", "load_review_classifier", "train_review_classifier", "predict_proba", "encode", "ids_prob_fn",
    "attention_maps", "attention_rollout", "explain_shap", "explain_lime", "explain_ig", "explain_attention",
    "explain_text", "explain_many",
    "spearman", "kendall", "topk_overlap", "rank_agreement", "agreement_matrix", "mean_agreement", "plot_agreement",
    "DeletionCurve", "remove_tokens", "deletion_auc", "deletion_curve_from_fn", "deletion_curve",
    "random_deletion_curve", "faithfulness_table", "plot_deletion_curves",
]
