"""Differentiate: one vector-Jacobian rule per op (:mod:`~symgrad.autodiff.rules`) and
reverse mode over IR graphs (:mod:`~symgrad.autodiff.reverse`)."""
