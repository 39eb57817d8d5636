"""ipywidgets used across lessons: the live training dashboard (lesson widgets live beside their topic).

>>> from tutorlib.widgets import TrainingDashboard, in_notebook
"""

from tutorlib.widgets.dashboard import TrainingDashboard, in_notebook

__all__ = ["TrainingDashboard", "in_notebook"]
