"""The result paragraphs' formatters: numbers in words, from the data."""
import math

from atslib.display.prose import compare, num, pct, pts, pval, say, seeds


def test_say_prints_one_paragraph_outside_ipython(capsys):
    assert say("""ATS ends
        +4.61 points above uniform.""") is None       # nothing for a cell to show a second time
    assert capsys.readouterr().out == "ATS ends +4.61 points above uniform.\n"


def test_formatters():
    assert pts(4.6149) == "+4.61 points" and pts(-0.04) == "−0.04 points" and pts(float("nan")) == "n/a"
    assert pct(0.583) == "58%" and pct(0.5, 1) == "50.0%"
    assert pval(0.0004) == "p < 0.001" and pval(0.0312) == "p = 0.031" and pval(0.9) == "p = 0.90"
    assert seeds(1) == "1 seed" and seeds(10) == "10 seeds"
    assert num(math.nan) == "n/a" and num(55.613) == "55.61"


def test_compare_says_no_different_when_the_interval_holds_zero():
    assert compare(2.4, 1.1, 3.7).startswith("2.40 points above")
    assert compare(-1.0, -1.8, -0.2).startswith("1.00 points below")
    assert compare(-0.04, -0.9, 0.8).startswith("no different")
