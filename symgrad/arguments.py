"""Binding call arguments to named parameters and checking their values, with errors that
name them."""

import numpy as np

from symgrad.messages import bounded_list, bounded_text


def bind(names, args, kwargs, noun="argument", after=""):
    """The values of ``names`` from positional ``args`` and keyword ``kwargs``, in order.

    Raises TypeError for too many positional values, an unknown name, a value given twice or
    a missing one; ``noun`` ('argument', 'input') and ``after`` (e.g. ' after params') word
    the messages.
    """
    names = list(names)
    if len(args) > len(names):
        raise TypeError(f"takes {len(names)} {noun}s {bounded_list(names)}{after}, got {len(args)} "
                        f"positional {noun}s")
    bound = dict(zip(names, args))
    for name, value in kwargs.items():
        if name not in bound and name not in names:
            raise TypeError(f"unknown {noun} {bounded_text(name, quoted=True)}; the {noun}s are "
                            f"{bounded_list(names)}")
        if name in bound:
            raise TypeError(f"{noun} {bounded_text(name, quoted=True)} given twice, by position "
                            f"and by name")
        bound[name] = value
    missing = [name for name in names if name not in bound]
    if missing:
        raise TypeError(f"missing {noun}s {bounded_list(missing)}; the {noun}s are "
                        f"{bounded_list(names)}")
    return [bound[name] for name in names]


_REAL = "a real number or an array of real numbers"
_INT64 = (-(1 << 63), 1 << 63)


def is_python_number(value):
    """Whether ``value`` is a Python ``int`` or ``float`` (not a bool, not a numpy scalar):
    a number without a dtype of its own, which takes the dtype of the other arguments."""
    return isinstance(value, (int, float)) and not isinstance(value, (bool, np.generic))


def describe(value, array=None):
    """What ``value`` is, for an error message: its type, and its dtype and shape if any (for
    another object, the dtype of ``array``, what ``np.asarray`` made of it, if given)."""
    if isinstance(value, np.ndarray):
        kind = "an array" if type(value) is np.ndarray else f"a {_qualified(type(value))}"
        return f"{kind} of dtype {value.dtype} and shape {value.shape}"
    if isinstance(value, np.generic):
        return f"a numpy {type(value).__name__} scalar"
    if value is None:
        return "None"
    name = _qualified(type(value))
    text = f"{'an' if name[0] in 'aeiouAEIOU' else 'a'} {name}"
    return text if array is None else f"{text} (as an array: dtype {array.dtype})"


def _qualified(kind):
    module = kind.__module__
    if module == "builtins":
        return kind.__name__
    if module.startswith("numpy.ma"):
        module = "numpy.ma"
    return f"{module}.{kind.__name__}"


def _refuse_masked(noun, name, value):
    raise TypeError(
        f"{noun} {name!r} must be {_REAL}, got {describe(value)}: its mask would be lost, "
        f"every element computed, masked or not. Pass arr.filled(fill_value) to give the "
        f"masked elements a value, or np.ma.getdata(arr) to compute on the data underneath")


def as_real_array(name, value, noun="argument", dtypes="float64, float32, float16 or integers"):
    """``value`` as a plain numpy array of real numbers (float or integer dtype), or an error
    naming ``name`` (the ``noun`` ``name``), saying what was expected (``dtypes``) and what
    came.

    Accepted: Python and numpy numbers, numpy arrays of any layout and byte order and their
    plain subclasses (``np.matrix``, ``np.memmap``: their numbers, as ``np.asarray`` gives
    them), and whatever ``np.asarray`` makes an array of (lists, tuples, objects with
    ``__array__`` or ``__array_interface__``).  Refused with a TypeError: bools, complex,
    text, dates, structured and object dtypes, floats wider than float64, masked arrays
    (``numpy.ma``: the mask would be lost) and objects that take over numpy's functions
    (``__array_ufunc__``: numpy would let them compute their own way, with units, labels or
    masks); with a ValueError: a Python int too large for float64.
    """
    if type(value) is np.ndarray or type(value) is float:
        array = np.asarray(value)       # the common cases, nothing more to look at
    else:
        array = _as_plain_array(noun, name, value)
    kind = array.dtype.kind
    if kind == "c":
        raise TypeError(f"{noun} {name!r} must be real, got complex values: "
                        f"{describe(value, array)}")
    if kind not in "fiu" or (kind == "f" and array.dtype.itemsize > 8):
        raise TypeError(f"{noun} {name!r} must be {_REAL} ({dtypes}), got "
                        f"{describe(value, array)}")
    return array


def _as_plain_array(noun, name, value):
    """``np.asarray(value)`` for any other object, refusing what it would lose or misread."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{noun} {name!r} must be {_REAL}, got a bool")
    if isinstance(value, int) and not _INT64[0] <= value < _INT64[1]:
        # numpy would make an object array of it; as a float it is what numpy computes with.
        try:
            return np.asarray(float(value))
        except OverflowError:
            raise ValueError(f"{noun} {name!r} must be {_REAL} that float64 can hold (below "
                             f"2**1024), got an int of {value.bit_length()} bits") from None
    if isinstance(value, (int, float, np.generic)):
        return np.asarray(value)
    if isinstance(value, np.ma.MaskedArray):
        _refuse_masked(noun, name, value)
    override = getattr(type(value), "__array_ufunc__", np.ndarray.__array_ufunc__)
    if override is not np.ndarray.__array_ufunc__:
        raise TypeError(
            f"{noun} {name!r} must be {_REAL}, got {describe(value)}, which takes over numpy's "
            f"functions (__array_ufunc__): numpy would let it compute in its own way (units, "
            f"labels, masks) and the kernel does not. Pass np.asarray(value) to compute on its "
            f"numbers alone")
    try:
        array = np.asanyarray(value)
    except Exception as error:  # numpy raises many types for ragged or odd objects
        raise TypeError(f"{noun} {name!r} must be {_REAL}, got {describe(value)} that numpy "
                        f"cannot make an array of: {error}") from error
    if isinstance(array, np.ma.MaskedArray):        # from the object's __array__
        _refuse_masked(noun, name, array)
    return np.asarray(array)
