"""Gradient checking against central finite differences."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import sympy

from symgrad.arguments import as_real_array
from symgrad.errors import GradcheckError
from symgrad.messages import bounded_list


def _point(at, kernel):
    """``at`` (symbols or names -> values) as a list in the kernel's argument order."""
    by_name = {}
    for key, value in at.items():
        name = key.name if isinstance(key, sympy.Symbol) else key
        if not isinstance(name, str):
            raise TypeError(f"at must map symbols or names to values, got key {key!r}")
        by_name[name] = np.array(as_real_array(name, value, noun="the value at"), np.float64)
    unknown = set(by_name) - set(kernel.arg_names)
    if unknown:
        raise ValueError(f"at names {bounded_list(sorted(unknown))}, which are not arguments of "
                         f"the kernel {bounded_list(kernel.arg_names)}")
    missing = [name for name in kernel.arg_names if name not in by_name]
    if missing:
        raise ValueError(f"at gives no value for {bounded_list(missing)}")
    return [by_name[name] for name in kernel.arg_names]


def gradcheck(f: Any, wrt: Any, at: Mapping[Any, Any], eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, full_limit: int = 2000, directions: int = 8,
              seed: int = 0) -> bool:
    """Check a compiled gradient against central finite differences in float64.

    Each partial derivative ``g`` is compared with ``(f(p + eps) - f(p - eps)) / (2 eps)``
    and passes when ``|g - fd| <= atol + rtol * |fd|`` (PyTorch's defaults).  Arrays in ``at``
    are checked elementwise.

    For tensor expressions and kernels the check runs on a float64 build of the same graph.
    With at most ``full_limit`` parameter entries every entry is checked; beyond that, the
    directional derivative along ``directions`` random unit directions is compared with
    ``(f(p + eps v) - f(p - eps v)) / (2 eps)``, and so are 32 randomly chosen entries.

    Parameters
    ----------
    f : sympy.Expr, symgrad.codegen.Kernel, Tensor or symgrad.codegen.TensorKernel
        An expression (compiled here) or a kernel from :func:`symgrad.compile`.
    wrt : sequence of sympy.Symbol or of Tensor
        The symbols (or parameter tensors) whose partial derivatives are checked.
    at : dict
        A value for every argument, keyed by symbol or tensor (or name).

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
    from symgrad.autodiff.reverse import value_and_grad
    from symgrad.codegen import Kernel, TensorKernel
    from symgrad.frontend.trace import symbol_list, trace
    from symgrad.tensors import Tensor

    if isinstance(f, (Tensor, TensorKernel)):
        return _tensor_gradcheck(f, wrt, at, eps, atol, rtol, full_limit, directions, seed)
    wrt_list, _ = symbol_list(wrt, "wrt")
    wrt_names = [s.name for s in wrt_list]
    if isinstance(f, Kernel):
        kernel = f
    else:
        others = [key for key in at if isinstance(key, sympy.Symbol) and key not in wrt_list]
        function = trace(f, wrt_list, others)
        kernel = Kernel(value_and_grad(function, wrt_names), value_and_grad=True)
    point = _point(at, kernel)
    value, grads = kernel(*point)
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


def _name_of(key):
    from symgrad.tensors import Tensor

    if isinstance(key, Tensor):
        if key.name is None:
            raise TypeError("at must be keyed by argument tensors or names, got a computed "
                            "tensor")
        return key.name
    if isinstance(key, sympy.Symbol):
        return key.name
    if isinstance(key, str):
        return key
    raise TypeError(f"at must be keyed by tensors, symbols or names, got {key!r}")


def _tensor_gradcheck(f, wrt, at, eps, atol, rtol, full_limit, directions, seed):
    from symgrad.autodiff.reverse import value_and_grad
    from symgrad.codegen import TensorKernel
    from symgrad.frontend.trace import inputs_of, tensor_list, trace_tensor
    from symgrad.tensors import Tensor

    values = {_name_of(key): value for key, value in at.items()}
    if isinstance(f, Tensor):
        wrt_list = tensor_list(wrt, "wrt")
        wrt_names = [t.name for t in wrt_list]
        inputs = [t for t in inputs_of(f) if t.name not in wrt_names]
        function, _ = trace_tensor(f, wrt_list, inputs)
        fused = value_and_grad(function, wrt_names)
    else:
        wrt_names = [_name_of(w) for w in ([wrt] if isinstance(wrt, (Tensor, str)) else wrt)]
        if wrt_names != list(f.param_names):
            raise ValueError(f"wrt {wrt_names} must be the kernel's parameters "
                             f"{bounded_list(f.param_names)}")
        fused = f.function
    kernel = TensorKernel(fused.with_dtype("float64"), num_params=len(wrt_names))
    missing = [n for n in kernel.param_names + kernel.input_names if n not in values]
    if missing:
        raise ValueError(f"at gives no value for {bounded_list(missing)}")
    unknown = set(values) - set(kernel.param_names) - set(kernel.input_names)
    if unknown:
        raise ValueError(f"at names {bounded_list(sorted(unknown))}, which are not arguments "
                         f"of the kernel")
    params, inputs = [], {}
    for name in kernel.param_names + kernel.input_names:
        array = np.array(as_real_array(name, values[name], noun="the value at"), np.float64)
        if name in kernel.input_names:
            inputs[name] = array
        else:
            params.append(array)

    def loss(point):
        return float(kernel(point, **inputs)[0])

    _, grads = kernel(params, **inputs)
    rows = []
    total = sum(p.size for p in params)
    rng = np.random.default_rng(seed)
    if total <= full_limit:
        entries = [(k, index) for k, p in enumerate(params) for index in np.ndindex(*p.shape)]
    else:
        flat = rng.choice(total, size=min(32, total), replace=False)
        offsets = np.cumsum([0] + [p.size for p in params])
        entries = []
        for position in sorted(flat):
            k = int(np.searchsorted(offsets, position, side="right") - 1)
            entries.append((k, np.unravel_index(position - offsets[k], params[k].shape)))
        for direction in range(directions):
            vectors = [rng.standard_normal(p.shape) for p in params]
            norm = np.sqrt(sum(float(np.sum(v * v)) for v in vectors))
            vectors = [v / norm for v in vectors]
            up = [p + eps * v for p, v in zip(params, vectors)]
            down = [p - eps * v for p, v in zip(params, vectors)]
            numeric = (loss(up) - loss(down)) / (2 * eps)
            analytic = sum(float(np.sum(g * v)) for g, v in zip(grads, vectors))
            if not abs(analytic - numeric) <= atol + rtol * abs(numeric):
                rows.append((f"dir{direction}", (), analytic, numeric))
    for k, index in entries:
        index = tuple(int(i) for i in index)
        up = [p.copy() for p in params]
        down = [p.copy() for p in params]
        up[k][index] += eps
        down[k][index] -= eps
        numeric = (loss(up) - loss(down)) / (2 * eps)
        analytic = float(np.asarray(grads[k])[index])
        if not abs(analytic - numeric) <= atol + rtol * abs(numeric):
            rows.append((kernel.param_names[k], index, analytic, numeric))
    if rows:
        raise GradcheckError(_table(rows, eps, atol, rtol))
    return True
