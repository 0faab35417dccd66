"""The worked examples in the analysis docstrings are true."""
import doctest

import pytest

from ptjf.analysis import numbers
from ptjf.analysis import pareto
from ptjf.analysis import runs


@pytest.mark.parametrize("module", [numbers, pareto, runs],
                         ids=lambda m: m.__name__)
def test_docstring_examples(module):
  result = doctest.testmod(module)
  assert result.attempted > 0 and result.failed == 0
