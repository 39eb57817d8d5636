"""ipywidgets shared by lessons: the live training dashboard, lesson 00's training playground, and
:func:`redraw`, the one way every explorer widget refreshes its output.

Topic-specific explorers live with their topic (e.g. ``tutorlib.optim.widgets``).

>>> from tutorlib.widgets import TrainingDashboard, in_notebook, training_playground
"""

from tutorlib.widgets.dashboard import TrainingDashboard, in_notebook
from tutorlib.widgets.playground import run_playground, training_playground
from tutorlib.widgets.redraw import redraw

__all__ = ["TrainingDashboard", "in_notebook", "training_playground", "run_playground", "redraw"]
