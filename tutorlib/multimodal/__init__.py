"""Multimodal learning with CLIP (lesson 07): contrastive loss, a small CLIP, zero-shot, retrieval, pretrained CLIP.

>>> from tutorlib.multimodal import info_nce, build_caption_tokenizer, build_clip, contrastive_step
>>> from tutorlib.multimodal import zero_shot_weights, recall_at_k, load_clip, retrieval_explorer
"""

from tutorlib.multimodal.captions import (DIGIT_TEMPLATES, NUMBER_WORDS, SHAPE_CLASSNAMES, SHAPE_SHORT_TEMPLATE,
                                          SHAPE_TEMPLATES, DigitCaptions, caption_vocabulary, shape_class_index,
                                          shape_labels)
from tutorlib.multimodal.clip import (SPECIAL_TOKENS, build_caption_tokenizer, build_clip, clip_collate,
                                      contrastive_step, tower_parameters, pair_logits, embed_pairs, encode_images, encode_texts,
                                      small_clip_config, to_pixel_values)
from tutorlib.multimodal.load import (DEFAULT_CLIP_ID, OFFLINE_FALLBACK, PHOTO_LABELS, load_clip, photo_zero_shot,
                                      sample_photos, save_clip)
from tutorlib.multimodal.loss import InfoNCELoss, contrastive_logits, contrastive_loss, info_nce
from tutorlib.multimodal.retrieval import caption_positives, chance_recall_at_k, recall_at_k, retrieval_report
from tutorlib.multimodal.viz import (plot_accuracy_bars, plot_joint_embedding, plot_photo_zero_shot,
                                     plot_similarity_matrix, project_2d)
from tutorlib.multimodal.widgets import (RetrievalExplorer, retrieval_explorer, top_images_for_text,
                                         top_texts_for_image, unknown_words)
from tutorlib.multimodal.zeroshot import (HELD_OUT_PAIRS, held_out_classnames, shapes_zero_shot, zero_shot_accuracy,
                                          zero_shot_logits, zero_shot_predict, zero_shot_weights)

__all__ = [
    "info_nce", "contrastive_logits", "contrastive_loss", "InfoNCELoss",
    "SPECIAL_TOKENS", "build_caption_tokenizer", "small_clip_config", "build_clip", "to_pixel_values",
    "clip_collate", "contrastive_step", "pair_logits", "encode_texts", "encode_images", "embed_pairs", "tower_parameters",
    "NUMBER_WORDS", "DIGIT_TEMPLATES", "DigitCaptions", "SHAPE_CLASSNAMES", "SHAPE_TEMPLATES", "SHAPE_SHORT_TEMPLATE",
    "shape_class_index", "shape_labels", "caption_vocabulary",
    "HELD_OUT_PAIRS", "held_out_classnames", "zero_shot_weights", "zero_shot_logits", "zero_shot_predict",
    "zero_shot_accuracy", "shapes_zero_shot",
    "caption_positives", "recall_at_k", "chance_recall_at_k", "retrieval_report",
    "DEFAULT_CLIP_ID", "OFFLINE_FALLBACK", "load_clip", "save_clip", "PHOTO_LABELS", "sample_photos", "photo_zero_shot",
    "plot_similarity_matrix", "project_2d", "plot_joint_embedding", "plot_accuracy_bars", "plot_photo_zero_shot",
    "unknown_words", "top_images_for_text", "top_texts_for_image", "RetrievalExplorer", "retrieval_explorer",
]
