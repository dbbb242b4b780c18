"""Gradient checking against central finite differences."""

import numpy as np
import sympy

from symgrad.errors import GradcheckError


def _point(at, kernel):
    """``at`` (symbols or names -> values) as a list in the kernel's argument order."""
    by_name = {}
    for key, value in at.items():
        name = key.name if isinstance(key, sympy.Symbol) else key
        if not isinstance(name, str):
            raise TypeError(f"at must map symbols or names to values, got key {key!r}")
        by_name[name] = np.array(value, dtype=np.float64)
    unknown = set(by_name) - set(kernel.arg_names)
    if unknown:
        raise ValueError(f"at names {sorted(unknown)}, which are not arguments of the kernel "
                         f"{list(kernel.arg_names)}")
    missing = [name for name in kernel.arg_names if name not in by_name]
    if missing:
        raise ValueError(f"at gives no value for {missing}")
    return [by_name[name] for name in kernel.arg_names]


def gradcheck(f, wrt, at, eps=1e-6, atol=1e-5, rtol=1e-3):
    """Check a compiled gradient against central finite differences in float64.

    Each partial derivative ``g`` is compared with ``(f(p + eps) - f(p - eps)) / (2 eps)``
    and passes when ``|g - fd| <= atol + rtol * |fd|`` (PyTorch's defaults).  Arrays in ``at``
    are checked elementwise.

    Parameters
    ----------
    f : sympy.Expr or codegen.Kernel
        An expression (compiled here) or a kernel from :func:`symgrad.compile`.
    wrt : sequence of sympy.Symbol
        The symbols whose partial derivatives are checked.
    at : dict
        A value for every argument, keyed by symbol (or name).

    Returns
    -------
    bool
        True when every entry matches.

    Raises
    ------
    GradcheckError
        With a table of the mismatching entries.

    Examples
    --------
    >>> import symgrad as sg
    >>> x, y = sg.symbols("x y")
    >>> sg.gradcheck(x**2 + x*y, wrt=[x, y], at={x: 3.0, y: -2.0})
    True
    """
    from codegen import Kernel
    from symgrad.api import _symbol_list, compile as compile_kernel

    wrt_list, _ = _symbol_list(wrt, "wrt")
    if isinstance(f, Kernel):
        kernel = f
    else:
        others = [key for key in at if isinstance(key, sympy.Symbol) and key not in wrt_list]
        kernel = compile_kernel(f, wrt_list, inputs=others)
    point = _point(at, kernel)
    value, grads = kernel(*point)
    wrt_names = [s.name for s in wrt_list]
    rows = []
    for symbol_name in wrt_names:
        if symbol_name not in kernel.arg_names[:len(grads)]:
            raise ValueError(f"{symbol_name!r} is not a differentiated argument of the kernel")
        position = kernel.arg_names.index(symbol_name)
        analytic = np.asarray(grads[position], dtype=np.float64)
        shifted_up = list(point)
        shifted_down = list(point)
        shifted_up[position] = point[position] + eps
        shifted_down[position] = point[position] - eps
        value_up, _ = kernel(*shifted_up)
        value_down, _ = kernel(*shifted_down)
        numeric = (np.asarray(value_up) - np.asarray(value_down)) / (2 * eps)
        analytic, numeric = np.broadcast_arrays(analytic, numeric)
        with np.errstate(invalid="ignore"):
            bad = ~(np.abs(analytic - numeric) <= atol + rtol * np.abs(numeric))
        for index in zip(*np.nonzero(np.atleast_1d(bad))):
            entry = index if analytic.ndim else ()
            rows.append((symbol_name, entry, float(analytic[entry]), float(numeric[entry])))
    if rows:
        raise GradcheckError(_table(rows, eps, atol, rtol))
    return True


def _table(rows, eps, atol, rtol):
    lines = [f"gradient check failed (eps={eps}, atol={atol}, rtol={rtol}): "
             f"{len(rows)} mismatching entries",
             f"{'wrt':>8} {'index':>10} {'analytic':>24} {'finite difference':>24} "
             f"{'abs error':>12}"]
    for name, index, analytic, numeric in rows[:50]:
        index_text = ",".join(map(str, index)) if index else "-"
        lines.append(f"{name:>8} {index_text:>10} {analytic:>24.16g} {numeric:>24.16g} "
                     f"{abs(analytic - numeric):>12.3g}")
    if len(rows) > 50:
        lines.append(f"... and {len(rows) - 50} more")
    return "\n".join(lines)
