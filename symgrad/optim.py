"""Optimisers and the lecture's learning rules.

Gradient methods (:class:`GradientDescent`, :class:`Momentum`, :class:`Adam`) are written
once, symbolically: :meth:`Optimizer.update` builds the update of one parameter from tensors,
and :class:`Trainer` compiles the loss, every gradient and every update into ONE native kernel
per step (the fused step).  Each optimiser also has :meth:`Optimizer.reference`, the same
update in numpy, used by the tests and by the unfused mode (``Trainer(..., fused=False)``).

Full-batch gradient descent, stochastic gradient descent (one example per step) and mini-batch
SGD are the same step on batches of different sizes: see :func:`symgrad.training.fit`.

The non-gradient rules of the lecture are kernels too: :func:`perceptron_rule` (Rosenblatt's
``w <- w + eta t_n x_n`` on misclassified points) and :func:`hebb_rule`
(``Delta w_ij = eta x_i x_j``).
"""

import numpy as np

from symgrad.messages import bounded_list
from symgrad.tensors import Tensor, tensor, where

__all__ = ["Optimizer", "GradientDescent", "SGD", "Momentum", "Adam", "Trainer",
           "perceptron_rule", "hebb_rule"]


class Optimizer:
    """A gradient method: hyper-parameters, per-parameter state and one update rule.

    Hyper-parameters are kernel arguments, so changing them (a learning-rate schedule) needs
    no recompilation.
    """

    #: names of the per-parameter state arrays (each of the parameter's shape, zeros at start)
    state_names = ()

    def hyperparameters(self, step):
        """Scalar arguments of the update at step ``step`` (1-based), by name."""
        raise NotImplementedError

    def update(self, param, grad, state, hyper):
        """Tensors ``(new_param, new_state)`` from tensors; ``hyper`` maps names to scalars."""
        raise NotImplementedError

    def reference(self, param, grad, state, step):
        """The same update in numpy: ``(new_param, new_state)``."""
        raise NotImplementedError

    def initial_state(self, values):
        return [[np.zeros_like(v) for _ in self.state_names] for v in values]


def _check_rate(name, value):
    if not (isinstance(value, (int, float)) and value >= 0 and np.isfinite(value)):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _check_beta(name, value):
    value = _check_rate(name, value)
    if value >= 1:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return value


class GradientDescent(Optimizer):
    r""":math:`\theta_t = \theta_{t-1} - \eta \nabla E(\theta_{t-1})`.

    Full-batch, stochastic (batch size 1) or mini-batch, depending on the batches it sees.
    """

    def __init__(self, lr=0.1):
        self.lr = _check_rate("lr", lr)

    def hyperparameters(self, step):
        return {"lr": self.lr}

    def update(self, param, grad, state, hyper):
        return param - hyper["lr"] * grad, []

    def reference(self, param, grad, state, step):
        return param - param.dtype.type(self.lr) * grad, []

    def __repr__(self):
        return f"GradientDescent(lr={self.lr})"


SGD = GradientDescent


class Momentum(Optimizer):
    r"""Heavy-ball momentum, as ``torch.optim.SGD(momentum=beta)``:
    :math:`v_t = \beta v_{t-1} + g_t`, :math:`\theta_t = \theta_{t-1} - \eta v_t`."""

    state_names = ("velocity",)

    def __init__(self, lr=0.1, beta=0.9):
        self.lr = _check_rate("lr", lr)
        self.beta = _check_rate("beta", beta)

    def hyperparameters(self, step):
        return {"lr": self.lr, "beta": self.beta}

    def update(self, param, grad, state, hyper):
        (velocity,) = state
        velocity = hyper["beta"] * velocity + grad
        return param - hyper["lr"] * velocity, [velocity]

    def reference(self, param, grad, state, step):
        kind = param.dtype.type
        velocity = kind(self.beta) * state[0] + grad
        return param - kind(self.lr) * velocity, [velocity]

    def __repr__(self):
        return f"Momentum(lr={self.lr}, beta={self.beta})"


class Adam(Optimizer):
    r"""Adam (Kingma and Ba 2015), as ``torch.optim.Adam``:
    :math:`m_t = \beta_1 m + (1 - \beta_1) g`, :math:`v_t = \beta_2 v + (1 - \beta_2) g^2`,
    :math:`\theta_t = \theta - \eta \hat m_t / (\sqrt{\hat v_t} + \epsilon)` with the bias
    corrections :math:`\hat m_t = m_t / (1 - \beta_1^t)`, :math:`\hat v_t = v_t / (1 -
    \beta_2^t)`."""

    state_names = ("m", "v")

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        self.lr = _check_rate("lr", lr)
        self.beta1 = _check_beta("betas[0]", betas[0])
        self.beta2 = _check_beta("betas[1]", betas[1])
        self.eps = _check_rate("eps", eps)

    def hyperparameters(self, step):
        return {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps,
                "correction1": 1.0 - self.beta1 ** step, "correction2": 1.0 - self.beta2 ** step}

    def update(self, param, grad, state, hyper):
        m, v = state
        m = hyper["beta1"] * m + (1 - hyper["beta1"]) * grad
        v = hyper["beta2"] * v + (1 - hyper["beta2"]) * (grad * grad)
        m_hat = m / hyper["correction1"]
        v_hat = v / hyper["correction2"]
        return param - hyper["lr"] * m_hat / (v_hat ** 0.5 + hyper["eps"]), [m, v]

    def reference(self, param, grad, state, step):
        kind = param.dtype.type
        hyper = {k: kind(v) for k, v in self.hyperparameters(step).items()}
        m = hyper["beta1"] * state[0] + (1 - hyper["beta1"]) * grad
        v = hyper["beta2"] * state[1] + (1 - hyper["beta2"]) * (grad * grad)
        m_hat = m / hyper["correction1"]
        v_hat = v / hyper["correction2"]
        return param - hyper["lr"] * m_hat / (np.sqrt(v_hat) + hyper["eps"]), [m, v]

    def __repr__(self):
        return f"Adam(lr={self.lr}, betas=({self.beta1}, {self.beta2}), eps={self.eps})"


class Trainer:
    """One training step of a loss: the loss, its gradients and the optimiser's update.

    Parameters
    ----------
    loss : Tensor
        A scalar loss.
    params : sequence of Tensor
        The parameters to train.
    inputs : sequence of Tensor
        The data arguments (a batch of inputs and targets).
    optimizer : Optimizer
    fused : bool
        True (default): loss, gradients and update in one native kernel.  False: a kernel for
        the loss and gradients, and the update in numpy (kept to measure the difference).

    Examples
    --------
    >>> trainer = Trainer(loss, net.parameters(), [X, T], Adam(lr=0.01))
    >>> state = trainer.initial_state(net.values())
    >>> values, state, value = trainer.step(net.values(), state, (x, t), step=1)
    """

    def __init__(self, loss, params, inputs, optimizer, fused=True):
        from symgrad.api import compile as compile_loss
        from symgrad.api import compile_function
        from symgrad.autodiff.reverse import vjp

        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a symgrad.optim.Optimizer, got "
                            f"{type(optimizer).__name__}")
        self.optimizer = optimizer
        self.params = list(params)
        self.inputs = list(inputs)
        self.fused = fused
        if not fused:
            self.kernel = compile_loss(loss, wrt=self.params, inputs=self.inputs)
            return
        dtype = loss.dtype
        hyper_names = list(optimizer.hyperparameters(1))
        hyper = {name: tensor(f"{name}__hyper", (), dtype) for name in hyper_names}
        states = [[tensor(f"{p.name}__{s}", p.shape, dtype) for s in optimizer.state_names]
                  for p in self.params]
        grads = vjp(loss.node, [p.node for p in self.params])
        outputs = [loss]
        for param, grad, state in zip(self.params, grads, states):
            new_param, new_state = optimizer.update(param, Tensor(grad), state, hyper)
            outputs.append(new_param)
            outputs.extend(new_state)
        arguments = (self.params + [s for group in states for s in group]
                     + [hyper[name] for name in hyper_names] + self.inputs)
        self.hyper_names = hyper_names
        self.kernel = compile_function(outputs, arguments)

    def initial_state(self, values):
        """Zero optimiser state for parameter values ``values``."""
        return self.optimizer.initial_state(values)

    def step(self, values, state, batch, step):
        """One step on ``batch`` (a sequence of arrays, in the order of ``inputs``).

        Returns
        -------
        (new_values, new_state, loss)
        """
        if len(batch) != len(self.inputs):
            raise TypeError(f"batch must hold {len(self.inputs)} arrays "
                            f"{bounded_list(t.name for t in self.inputs)}, got {len(batch)}")
        if not self.fused:
            loss, grads = self.kernel(values, *batch)
            updated = [self.optimizer.reference(p, g, s, step)
                       for p, g, s in zip(values, grads, state)]
            return [u[0] for u in updated], [u[1] for u in updated], float(loss)
        hyper = self.optimizer.hyperparameters(step)
        flat_state = [s for group in state for s in group]
        outputs = self.kernel(*values, *flat_state, *[hyper[n] for n in self.hyper_names],
                              *batch)
        per_param = 1 + len(self.optimizer.state_names)
        new_values = list(outputs[1::per_param])
        new_state = [list(outputs[2 + k * per_param: 1 + (k + 1) * per_param])
                     for k in range(len(values))]
        return new_values, new_state, float(outputs[0])


def perceptron_rule(n_features, dtype="float64"):
    r"""Rosenblatt's perceptron update as a kernel.

    For inputs ``X`` (n, d), targets ``t`` in {-1, +1} (n, 1) and weights ``w`` (d, 1), a
    point is misclassified when :math:`t_n w^T x_n \le 0`; the update adds
    :math:`\eta t_n x_n` for each of them (summed over the batch, so one example per call is
    the classic online rule).

    Returns
    -------
    symgrad.codegen.runtime.tensor_kernel.FunctionKernel
        ``kernel(w, X, t, eta) -> (new_w, number_misclassified)``.
    """
    from symgrad.api import compile_function

    w = tensor("w", (n_features, 1), dtype)
    X = tensor("X", ("n", n_features), dtype)
    t = tensor("t", ("n", 1), dtype)
    eta = tensor("eta", (), dtype)
    wrong = where(t * (X @ w) <= 0, 1.0, 0.0)
    return compile_function([w + eta * (X.T @ (t * wrong)), wrong.sum()], [w, X, t, eta],
                            names=["w", "errors"])


def hebb_rule(n_inputs, n_outputs=None, dtype="float64"):
    r"""Hebb's rule :math:`\Delta w_{ij} = \eta x_i y_j` as a kernel, summed over a batch.

    With ``n_outputs`` None it is auto-associative (:math:`y = x`, a Hopfield-style memory):
    ``kernel(W, X, eta) -> W + eta X^T X``; otherwise hetero-associative:
    ``kernel(W, X, Y, eta) -> W + eta Y^T X`` with ``W`` of shape (n_outputs, n_inputs).
    """
    from symgrad.api import compile_function

    X = tensor("X", ("n", n_inputs), dtype)
    eta = tensor("eta", (), dtype)
    if n_outputs is None:
        W = tensor("W", (n_inputs, n_inputs), dtype)
        return compile_function([W + eta * (X.T @ X)], [W, X, eta], names=["W"])
    W = tensor("W", (n_outputs, n_inputs), dtype)
    Y = tensor("Y", ("n", n_outputs), dtype)
    return compile_function([W + eta * (Y.T @ X)], [W, X, Y, eta], names=["W"])
