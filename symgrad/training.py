"""Training loops, histories, and saving parameters.

:func:`fit` runs epochs of (full-batch, stochastic or mini-batch) gradient descent with one
native call per batch, shuffles with a seed, shows a progress bar with the current loss (tqdm,
when installed and the output is a terminal) and returns a :class:`History`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from symgrad.tensors import Tensor

import sys
import time
import zipfile

import numpy as np

from symgrad.arguments import as_real_array
from symgrad.messages import bounded_list
from symgrad.optim import GradientDescent, Optimizer, Trainer

__all__ = ["fit", "History", "save", "load"]


class History:
    """What a training run recorded, one entry per epoch.

    Attributes
    ----------
    loss : list of float
        The mean of the batch losses of each epoch.
    epoch_time : list of float
        Seconds per epoch.
    metrics : dict of str -> list
        Values of the ``metrics`` callbacks, per epoch.
    values : list of numpy.ndarray
        The parameter values at the end.
    compile_time : float
        Seconds spent building and compiling the step kernel.
    from_cache : bool
        Whether the step kernel's native code came from the disk cache.
    """

    def __init__(self):
        self.loss = []
        self.epoch_time = []
        self.metrics = {}
        self.values = None
        self.compile_time = 0.0
        self.from_cache = False

    def __repr__(self):
        last = f"{self.loss[-1]:.6g}" if self.loss else "-"
        return f"<History: {len(self.loss)} epochs, final loss {last}>"

    def plot(self, path=None, title="training loss"):
        """The loss curve (matplotlib, imported only here); saved to ``path`` if given.

        Returns the matplotlib Figure.
        """
        try:
            import matplotlib
        except ImportError as error:
            raise ImportError("History.plot needs matplotlib: pip install matplotlib") from error
        if path is not None:
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axis = plt.subplots(figsize=(6, 4))
        axis.plot(range(1, len(self.loss) + 1), self.loss, marker=".")
        axis.set_xlabel("epoch")
        axis.set_ylabel("loss")
        axis.set_title(title)
        axis.grid(alpha=0.3)
        if min(self.loss, default=1) > 0:
            axis.set_yscale("log")
        figure.tight_layout()
        if path is not None:
            figure.savefig(path, dpi=80)
        return figure


def _parameters_and_values(model):
    """(parameter tensors, value arrays, setter) for a model or explicit pairs."""
    if hasattr(model, "parameters") and hasattr(model, "values"):
        return list(model.parameters()), [v.copy() for v in model.values()], \
            getattr(model, "set_values", None)
    pairs = list(model.items()) if isinstance(model, dict) else list(model)
    params = [p for p, _ in pairs]
    values = [np.array(as_real_array(p.name, v, noun="the value of parameter"), copy=True)
              for p, v in pairs]
    return params, values, None


def _progress_bar(total, enabled):
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="epoch", leave=True)


def fit(model: Any, loss: Tensor, inputs: Sequence[Tensor], data: Sequence[Any],
        optimizer: Optimizer | None = None, epochs: int = 10, batch_size: int | None = None,
        shuffle: bool = True, seed: int = 0, progress: bool | None = None,
        metrics: Mapping[str, Callable[..., float]] | None = None, fused: bool = True,
        verbose: bool = False) -> History:
    """Train ``model`` on ``data`` by minimising ``loss``.

    Parameters
    ----------
    model : object with parameters(), values(), set_values(); or dict / pairs
        The parameters and their starting values (an :class:`~symgrad.nn.MLP` or
        :class:`~symgrad.nn.Dense`, or ``{tensor: array}``).  A model's values are updated at
        the end.
    loss : Tensor
        The scalar loss, built from the model's parameters and ``inputs``.
    inputs : sequence of Tensor
        The data tensors (their first size is the batch size).
    data : sequence of numpy.ndarray
        One array per input, all with the same number of examples.
    optimizer : Optimizer
        Default: :class:`~symgrad.optim.GradientDescent` with ``lr=0.1``.
    epochs : int
    batch_size : int or None
        None: full-batch gradient descent; 1: stochastic gradient descent; k: mini-batches.
    shuffle : bool
        Reshuffle the examples every epoch (with ``seed``).
    progress : bool or None
        A progress bar with the current loss; None: only when stderr is a terminal.
    metrics : dict of str -> callable, optional
        ``metric(values) -> float`` evaluated after each epoch.
    fused : bool
        Fuse the update into the step kernel (see :class:`~symgrad.optim.Trainer`).
    verbose : bool
        Print one line per epoch.

    Returns
    -------
    History
    """
    optimizer = optimizer if optimizer is not None else GradientDescent(0.1)
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a symgrad.optim.Optimizer, got "
                        f"{type(optimizer).__name__}")
    params, values, setter = _parameters_and_values(model)
    inputs = list(inputs)
    data = list(data)
    if len(data) != len(inputs):
        names = bounded_list(t.name for t in inputs)
        raise ValueError(f"data must hold one array per input {names}, got {len(data)}")
    data = [as_real_array(tensor.name, array, noun="the data for input")
            for tensor, array in zip(inputs, data)]
    count = data[0].shape[0] if data and data[0].ndim else 0
    for tensor, array in zip(inputs, data):
        if array.ndim == 0 or array.shape[0] != count:
            raise ValueError(f"every data array needs the same number of examples: "
                             f"{inputs[0].name!r} has {count}, {tensor.name!r} has shape "
                             f"{array.shape}")
    if count == 0:
        raise ValueError("data holds no examples")
    if not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be an int >= 0, got {epochs!r}")
    if batch_size is None:
        batch_size = count
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be None or an int >= 1, got {batch_size!r}")

    history = History()
    start = time.perf_counter()
    trainer = Trainer(loss, params, inputs, optimizer, fused=fused)
    history.compile_time = time.perf_counter() - start
    history.from_cache = trainer.kernel.compiled.from_cache
    state = trainer.initial_state(values)
    rng = np.random.default_rng(seed)
    metrics = metrics or {}
    step = 0
    bar = _progress_bar(epochs, progress)
    try:
        for epoch in range(epochs):
            start = time.perf_counter()
            order = rng.permutation(count) if shuffle else np.arange(count)
            total, batches = 0.0, 0
            for begin in range(0, count, batch_size):
                chosen = order[begin:begin + batch_size]
                batch = [array[chosen] for array in data]
                step += 1
                values, state, batch_loss = trainer.step(values, state, batch, step)
                total += batch_loss
                batches += 1
            history.loss.append(total / batches)
            history.epoch_time.append(time.perf_counter() - start)
            for name, metric in metrics.items():
                history.metrics.setdefault(name, []).append(metric(values))
            if bar is not None:
                bar.set_postfix(loss=f"{history.loss[-1]:.4g}",
                                **{k: f"{v[-1]:.4g}" for k, v in history.metrics.items()})
                bar.update(1)
            if verbose:
                extra = "".join(f"  {k} {v[-1]:.4g}" for k, v in history.metrics.items())
                print(f"epoch {epoch + 1:4d}  loss {history.loss[-1]:.6g}{extra}  "
                      f"({history.epoch_time[-1] * 1e3:.1f} ms)")
    finally:
        if bar is not None:
            bar.close()
    history.values = values
    if setter is not None:
        setter(values)
    return history


def save(path: str | os.PathLike, model: Any) -> None:
    """Save parameter values to a ``.npz`` file, keyed by parameter name (no pickle)."""
    params, values, _ = _parameters_and_values(model)
    names = [p.name for p in params]
    if len(set(names)) != len(names):
        raise ValueError(f"parameter names must be distinct to be saved, got {bounded_list(names)}")
    np.savez(path, **dict(zip(names, values)))


def load(path: str | os.PathLike, model: Any) -> Any:
    """Load values saved by :func:`save` into ``model`` (checked against its parameters'
    names, shapes and dtypes; the file is read without pickle).  Returns the values."""
    params, _, setter = _parameters_and_values(model)
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path!s} is not a parameter file written by symgrad.save: "
                         f"{error}") from error
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{path!s} is not a parameter file written by symgrad.save (an .npz "
                         f"archive of named arrays)")
    with archive:
        names = [p.name for p in params]
        missing = [n for n in names if n not in archive.files]
        extra = [n for n in archive.files if n not in names]
        if missing or extra:
            held = bounded_list(sorted(archive.files))
            raise ValueError(f"{path!s} holds parameters {held}, the model has "
                             f"{bounded_list(names)}")
        values = []
        for param in params:
            try:
                array = archive[param.name]
            except (OSError, ValueError, zipfile.BadZipFile) as error:
                raise ValueError(f"parameter {param.name!r} in {path!s} is not readable: "
                                 f"{error}") from error
            if not isinstance(array, np.ndarray) or array.dtype.kind != "f":
                raise ValueError(f"parameter {param.name!r} in {path!s} is not an array of "
                                 f"floats")
            if array.shape != param.shape or array.dtype != np.dtype(param.dtype):
                raise ValueError(f"parameter {param.name!r} in {path!s} has shape {array.shape} "
                                 f"and dtype {array.dtype}; the model expects {param.shape} "
                                 f"{param.dtype}")
            values.append(array)
    if setter is not None:
        setter(values)
    return values
