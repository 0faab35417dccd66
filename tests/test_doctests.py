"""The worked examples in the docstrings are true."""
import doctest

import pytest

from ptjf import demo, reproduce
from ptjf.analysis import numbers, pareto, runs
from ptjf.engine import allocator, cli as engine_cli, data, optim
from ptjf.launch import plan


@pytest.mark.parametrize("module", [numbers, pareto, runs, allocator, engine_cli, data, optim, plan,
                                    demo, reproduce],
                         ids=lambda m: m.__name__)
def test_docstring_examples(module):
  result = doctest.testmod(module)
  assert result.attempted > 0 and result.failed == 0
