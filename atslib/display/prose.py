"""Result paragraphs written from the data: a notebook reads each table and figure in words.

``say(text)`` shows a Markdown paragraph (rendered in JupyterLab and in the executed HTML copy,
printed as plain text elsewhere; it returns nothing, so a cell ending in it shows it once). Its
numbers come from the notebook's data through the formatters below, never typed in, so the words
stay true when the results change:

    say(f"ATS ends {pts(d)} above uniform ({seeds(n)}, {pval(p)}).")

``pts`` signs a difference in points, ``pct`` writes a share, ``pval`` a p-value, ``seeds`` a count,
``ci`` an interval; ``compare`` words a difference by whether its interval excludes zero.
"""
from __future__ import annotations

import math

__all__ = ["say", "pts", "pct", "pval", "seeds", "ci", "compare", "num"]


def say(text: str) -> None:
    """Show ``text`` as a Markdown paragraph under IPython (printed otherwise), its lines joined."""
    text = " ".join(line.strip() for line in str(text).strip().splitlines())
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
    except ImportError:
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        display(Markdown(text))
    else:
        print(text)


def num(x: float, digits: int = 2) -> str:
    """A plain number with ``digits`` decimals ("n/a" when missing)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.{digits}f}"


def pts(d: float, digits: int = 2) -> str:
    """A difference in accuracy points, signed: "+4.61 points", "−0.04 points"."""
    if d is None or (isinstance(d, float) and math.isnan(d)):
        return "n/a"
    sign = "+" if d >= 0 else "−"
    return f"{sign}{abs(d):.{digits}f} points"


def pct(share: float, digits: int = 0) -> str:
    """A share in [0, 1] as a percentage: "58%"."""
    if share is None or (isinstance(share, float) and math.isnan(share)):
        return "n/a"
    return f"{100 * share:.{digits}f}%"


def pval(p: float, name: str = "p") -> str:
    """A p-value: "p = 0.003", "p < 0.001"."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return f"{name} n/a"
    return f"{name} < 0.001" if p < 0.001 else f"{name} = {p:.3f}" if p < 0.1 else f"{name} = {p:.2f}"


def seeds(n: int) -> str:
    """A count of seeds: "1 seed", "10 seeds"."""
    return f"{int(n)} seed" + ("" if int(n) == 1 else "s")


def ci(lo: float, hi: float, digits: int = 2) -> str:
    """An interval: "[1.20, 3.40]"."""
    return f"[{lo:.{digits}f}, {hi:.{digits}f}]"


def compare(d: float, lo: float, hi: float, better: str = "above", worse: str = "below") -> str:
    """A difference with its interval in words: "2.40 points above (95% CI [...])" when the
    interval excludes zero, "no different (...)" when it contains zero."""
    where = better if lo > 0 else worse if hi < 0 else None
    if where is None:
        return f"no different ({pts(d)}, 95% CI {ci(lo, hi)})"
    return f"{abs(d):.2f} points {where} (95% CI {ci(lo, hi)})"
