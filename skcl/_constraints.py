"""Parameter constraints, declared as scikit-learn declares them, and their check.

Every estimator, plug-in and memory lists its parameters' constraints in a
class attribute ``_parameter_constraints`` with scikit-learn's vocabulary
(:class:`~sklearn.utils._param_validation.Interval`, ``StrOptions``, types,
``None``, ``"boolean"``...), plus :class:`Satisfies` for what that vocabulary
cannot say (a subclass of ``torch.nn.Module``, a list of penalties).
:func:`check_params` checks an object's parameters against them and raises
scikit-learn's ``InvalidParameterError`` (a ValueError and a TypeError) naming
the parameter, the accepted values and the value given.
"""

import numbers

from sklearn.utils._param_validation import (
    Interval,
    InvalidParameterError,
    StrOptions,
    _Constraint,
    make_constraint,
)

__all__ = [
    "PROBABILITY",
    "SIZE",
    "STRENGTH",
    "Interval",
    "InvalidParameterError",
    "Satisfies",
    "StrOptions",
    "check_params",
]

# A strength (lam, alpha, beta, ...): finite and >= 0. An Interval without a
# right bound excludes inf unless it is closed on the right, and nan always.
STRENGTH = Interval(numbers.Real, 0, None, closed="left")
# A probability, a decay or a mixing weight.
PROBABILITY = Interval(numbers.Real, 0, 1, closed="both")
# A number of samples, rows or epochs.
SIZE = Interval(numbers.Integral, 1, None, closed="left")


class Satisfies(_Constraint):
    """A constraint given by a predicate and the words that describe it.

    Parameters
    ----------
    predicate : callable
        Returns whether a value is accepted.
    description : str
        What is accepted, as the error message shows it ("a list of ...").
    """

    def __init__(self, predicate, description):
        super().__init__()
        self.predicate = predicate
        self.description = description

    def is_satisfied_by(self, val):
        return bool(self.predicate(val))

    def __str__(self):
        return self.description


def _describe(constraint):
    """Return the words for what ``constraint`` accepts."""
    if isinstance(constraint, Interval):
        integral = constraint.type is numbers.Integral
        kind = "an int" if integral else "a float"
        left, right = constraint.left, constraint.right
        closed_left = constraint.closed in ("left", "both")
        if right is None and left is not None:
            if left == 0 and not closed_left and not integral:
                words = "a positive float"
            else:
                words = f"{kind} {'>=' if closed_left else '>'} {left}"
            return words if integral else f"{words} (finite)"
        low = "-inf" if left is None else left
        high = "inf" if right is None else right
        brackets = ("[" if closed_left else "(") + (
            "]" if constraint.closed in ("right", "both") else ")"
        )
        return f"{kind} in {brackets[0]}{low}, {high}{brackets[1]}"
    if isinstance(constraint, StrOptions):
        return _join([repr(option) for option in sorted(constraint.options)])
    if type(constraint).__name__ == "_Booleans":
        return "a bool"
    return str(constraint)


def _join(words):
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def _satisfied(constraint, value):
    # A bool is an int to Python, never a size or a strength to us.
    if isinstance(constraint, Interval) and isinstance(value, bool):
        return False
    return constraint.is_satisfied_by(value)


def check_params(obj, params=None, *, prefix=""):
    """Check ``obj``'s parameters against its class's ``_parameter_constraints``.

    Parameters
    ----------
    obj : object
        An object with ``get_params`` whose class may declare
        ``_parameter_constraints``: a dict from parameter name to a list of
        constraints, any of which accepts a value. Parameters without
        constraints are not checked.
    params : dict or None
        The parameters to check; None for ``obj.get_params(deep=False)``.
    prefix : str
        Where ``obj`` sits in an estimator (``"penalty__"``): the message
        names the parameter as ``set_params`` does, and ``obj``'s class.

    Raises
    ------
    sklearn.utils._param_validation.InvalidParameterError
        A ValueError and a TypeError, naming the first invalid parameter,
        what it accepts and the value given.
    """
    constraints = getattr(type(obj), "_parameter_constraints", {})
    if params is None:
        params = obj.get_params(deep=False)
    for name, value in params.items():
        allowed = constraints.get(name, "no_validation")
        if isinstance(allowed, str) and allowed == "no_validation":
            continue
        made = [
            c if isinstance(c, _Constraint) else make_constraint(c) for c in allowed
        ]
        if any(_satisfied(c, value) for c in made):
            continue
        expected = _join([_describe(c) for c in made if not c.hidden])
        owner = f" ({type(obj).__name__}'s {name!r})" if prefix else ""
        raise InvalidParameterError(
            f"{prefix}{name} must be {expected}, got {value!r}{owner}."
        )
