"""Error-message text of bounded size, for expressions of any depth and lists of any length.

A message names the first few items and the count, and shows an expression in at most a few
hundred characters: SymPy's printers recurse once per level of nesting, so an expression that
is deep or large is written here by an iterative walk, in function-call form, cut at the
limit.  (SymPy is not imported here: where it is not loaded, no value is a SymPy
expression.)
"""

import sys

LIST_ITEMS = 8
TEXT_CHARACTERS = 200


def bounded_list(items, limit=LIST_ITEMS):
    """``['a', 'b', 'c']``, or for a long list its first ``limit`` items and the count:
    ``['x0', 'x1', ..., 'x7', ...] (5000 in all)``."""
    items = list(items)
    shown = ", ".join(bounded_text(item, 60, quoted=True) for item in items[:limit])
    if len(items) <= limit:
        return f"[{shown}]"
    return f"[{shown}, ...] ({len(items)} in all)"


def _small(expr, nodes=300, height=40):
    """Whether ``expr`` has at most ``nodes`` nodes and ``height`` levels (found iteratively,
    stopping as soon as either bound is passed)."""
    stack = [(expr, 1)]
    count = 0
    while stack:
        current, level = stack.pop()
        count += 1
        if count > nodes or level > height:
            return False
        stack.extend((arg, level + 1) for arg in current.args)
    return True


def _is_sympy(value):
    sympy = sys.modules.get("sympy")
    return sympy is not None and isinstance(value, sympy.Basic)


def _call_form(expr, limit):
    """``tanh(tanh(Add(x, y)))``, written by an iterative walk and cut after ``limit``
    characters."""
    parts = []
    length = 0
    stack = [expr]
    while stack and length <= limit:
        item = stack.pop()
        if isinstance(item, str):
            text = item
        elif _is_sympy(item) and item.args:
            text = f"{type(item).__name__}("
            stack.append(")")
            for position, arg in enumerate(reversed(item.args)):
                stack.append(arg)
                if position < len(item.args) - 1:
                    stack.append(", ")
        else:
            text = str(item)
        parts.append(text)
        length += len(text)
    return "".join(parts)


def bounded_text(value, limit=TEXT_CHARACTERS, quoted=False):
    """``value`` as text of at most about ``limit`` characters (``...`` marks a cut).

    A SymPy expression small enough for SymPy's printer is printed by it; a deeper or larger
    one in function-call form.  ``quoted`` gives strings their ``repr``.
    """
    if _is_sympy(value):
        text = None
        if _small(value):
            try:
                text = str(value)
            except RecursionError:
                text = None
        if text is None:
            text = _call_form(value, limit)
    elif isinstance(value, str):
        text = repr(value) if quoted else value
    else:
        try:
            text = repr(value) if quoted else str(value)
        except RecursionError:
            text = f"<{type(value).__name__}>"
    if len(text) > limit:
        text = text[:limit] + "..."
    return text
