"""Every dataset the course uses, offline-first: digits, reviews, captioned shapes, a code corpus.

>>> from tutorlib.data import load_digits, load_reviews, ShapesDataset, code_corpus
"""

from tutorlib.data.code import code_corpus, stdlib_files
from tutorlib.data.digits import DIGITS_SHAPE, load_digits
from tutorlib.data.hub import HubUnavailable, hub_reachable, load_hub_dataset, looks_like_hub_id, require_hub
from tutorlib.data.loaders import make_loader, text_collate
from tutorlib.data.reviews import REVIEW_LABELS, ReviewsDataset, load_reviews, reviews_path
from tutorlib.data.shapes import COLORS, POSITIONS, SHAPES, SIZES, ShapesDataset, caption_for, draw_shape

__all__ = [
    "load_digits", "DIGITS_SHAPE", "load_reviews", "ReviewsDataset", "REVIEW_LABELS", "reviews_path",
    "ShapesDataset", "COLORS", "SHAPES", "SIZES", "POSITIONS", "caption_for", "draw_shape",
    "code_corpus", "stdlib_files", "HubUnavailable", "hub_reachable", "require_hub",
    "load_hub_dataset", "looks_like_hub_id", "make_loader", "text_collate",
]
