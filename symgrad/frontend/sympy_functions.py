"""SymPy functions that symgrad adds: the logistic sigmoid, softplus and rounding to even.

They are ordinary SymPy functions (``sympy.diff`` differentiates them, ``evalf`` evaluates them
with mpmath at any precision, ``sympy.latex`` prints them), and the frontend translates them to
the IR's stable primitives, which never overflow.  ``expm1``, ``log1p``, ``log2``, ``log10``,
``exp2`` and ``hypot`` come from ``sympy.codegen.cfunctions``.
"""

import sympy
from sympy.codegen.cfunctions import exp2, expm1, hypot, log1p, log2, log10

__all__ = ["sigmoid", "softplus", "round_even", "expm1", "log1p", "log2", "log10", "exp2",
           "hypot"]


class sigmoid(sympy.Function):
    r"""The logistic sigmoid :math:`\sigma(x) = 1 / (1 + e^{-x})`.

    Its derivative is :math:`\sigma(x) (1 - \sigma(x))`.

    Examples
    --------
    >>> x = sympy.Symbol("x", real=True)
    >>> sympy.diff(sigmoid(x), x)
    (1 - sigmoid(x))*sigmoid(x)
    """

    @classmethod
    def eval(cls, x):
        if x.is_zero:
            return sympy.S.Half
        if x is sympy.oo:
            return sympy.S.One
        if x is -sympy.oo:
            return sympy.S.Zero
        return None

    def fdiff(self, argindex=1):
        return self * (1 - self)

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return 1 / (1 + sympy.exp(-x))

    def _eval_evalf(self, prec):
        return self.rewrite(sympy.exp)._eval_evalf(prec)

    def _eval_is_real(self):
        return self.args[0].is_real

    def _eval_is_positive(self):
        return self.args[0].is_real

    def _latex(self, printer, exp=None):
        body = rf"\sigma\left({printer._print(self.args[0])}\right)"
        return body if exp is None else rf"{body}^{{{exp}}}"


class softplus(sympy.Function):
    r"""The softplus :math:`\log(1 + e^x)`, whose derivative is :math:`\sigma(x)`."""

    @classmethod
    def eval(cls, x):
        if x.is_zero:
            return sympy.log(2)
        return None

    def fdiff(self, argindex=1):
        return sigmoid(self.args[0])

    def _eval_rewrite_as_log(self, x, **kwargs):
        return sympy.log(1 + sympy.exp(x))

    def _eval_evalf(self, prec):
        return self.rewrite(sympy.log)._eval_evalf(prec)

    def _eval_is_real(self):
        return self.args[0].is_real

    def _eval_is_positive(self):
        return self.args[0].is_real

    def _latex(self, printer, exp=None):
        body = rf"\operatorname{{softplus}}\left({printer._print(self.args[0])}\right)"
        return body if exp is None else rf"{body}^{{{exp}}}"


class round_even(sympy.Function):
    """The nearest integer, ties to the even one (``numpy.round``, ``numpy.rint``); its
    derivative is 0 wherever it exists.

    Examples
    --------
    >>> round_even(sympy.Rational(5, 2))
    2
    """

    @classmethod
    def eval(cls, x):
        if x.is_Number and x.is_finite:
            return sympy.Integer(round(sympy.Rational(x)))
        return None

    def fdiff(self, argindex=1):
        return sympy.S.Zero

    def _eval_is_real(self):
        return self.args[0].is_real

    def _eval_is_integer(self):
        return self.args[0].is_finite and self.args[0].is_real

    def _latex(self, printer, exp=None):
        body = rf"\operatorname{{round}}\left({printer._print(self.args[0])}\right)"
        return body if exp is None else rf"{body}^{{{exp}}}"
