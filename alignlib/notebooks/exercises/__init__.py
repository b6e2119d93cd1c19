"""Exercises with checks, for the ``## Exercises`` section that ends every notebook.

An exercise asks for a function (or a prediction). :meth:`Exercises.check` runs the answer on the
check's own cases, compares each result with an independent reference (alignlib's implementation,
a closed form, SciPy, scikit-learn, or a measurement the notebook just made) and returns a
:class:`Verdict`: passed, not answered yet, or failed with a hint that names what differs (shape,
transposed, off by a factor, mask ignored, wrong axis, ...), never the expected values.

``Exercises(solutions=True)`` (the notebooks' ``solutions`` parameter; the regression run sets it)
checks the reference solutions of :mod:`alignlib.notebooks.solutions` instead of the answer cells,
folds each one under its verdict, and raises :class:`ExerciseFailed` if one does not pass.

The core (:class:`Verdict`, :class:`Exercises`, the registry and the comparison helpers) is
:mod:`~alignlib.notebooks.exercises.core`; each notebook's checks are a module of this package
(``optimal_transport`` for 01, ..., ``learned`` for 10), each ``check_<name>`` the check of exercise ``<name>``.
"""
from alignlib.notebooks.exercises import (data, emma, experiments, experts, inside, learned, mamba, mmd,  # noqa: F401
                                          optimal_transport, training)
from alignlib.notebooks.exercises.core import CHECKS, ExerciseFailed, Exercises, Verdict, check  # noqa: F401
