"""Check: the numpy reference interpreter (:mod:`~symgrad.reference.evaluate`) and
finite-difference gradient checks (:mod:`~symgrad.reference.gradcheck`)."""
