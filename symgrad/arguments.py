"""Binding call arguments to named parameters, with errors that name them."""


def bind(names, args, kwargs, noun="argument", after=""):
    """The values of ``names`` from positional ``args`` and keyword ``kwargs``, in order.

    Raises TypeError for too many positional values, an unknown name, a value given twice or
    a missing one; ``noun`` ('argument', 'input') and ``after`` (e.g. ' after params') word
    the messages.
    """
    names = list(names)
    if len(args) > len(names):
        raise TypeError(f"takes {len(names)} {noun}s {names}{after}, got {len(args)} "
                        f"positional {noun}s")
    bound = dict(zip(names, args))
    for name, value in kwargs.items():
        if name not in bound and name not in names:
            raise TypeError(f"unknown {noun} {name!r}; the {noun}s are {names}")
        if name in bound:
            raise TypeError(f"{noun} {name!r} given twice, by position and by name")
        bound[name] = value
    missing = [name for name in names if name not in bound]
    if missing:
        raise TypeError(f"missing {noun}s {missing}; the {noun}s are {names}")
    return [bound[name] for name in names]
