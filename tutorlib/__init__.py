"""tutorlib: the companion library of the advanced deep-learning course.

Core: ``runtime`` (device, seeds, smoke mode), ``data`` (bundled datasets), ``models``,
``train`` (the one training loop), ``viz``, ``widgets``, ``grading``, ``cli``.

>>> import tutorlib
>>> tutorlib.__version__ >= "0.1"
True
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
