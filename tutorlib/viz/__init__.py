"""Plots shared across lessons: training curves, confusion matrices, image grids, Pareto charts.

>>> from tutorlib.viz import plot_history, plot_confusion_matrix, image_grid, plot_pareto
"""

from tutorlib.viz.curves import image_grid, plot_confusion_matrix, plot_history, plot_pareto

__all__ = ["plot_history", "plot_confusion_matrix", "image_grid", "plot_pareto"]
