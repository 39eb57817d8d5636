"""Exercise checks, one module per lesson (``ex00.py`` for lesson 00, ``ex01.py`` for lesson 01, …).

Every module in this folder whose name does not start with ``_`` is imported automatically by
:mod:`tutorlib.grading.registry`, so adding a lesson's checks means adding one file here with
functions decorated by :func:`tutorlib.grading.register`.
"""
