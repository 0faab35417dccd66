"""Pareto helpers on hand-made points (minimisation)."""
import pytest

from ptjf.analysis import pareto


def test_non_dominated_keeps_front_and_ties_drops_dominated():
  points = [(1, 5), (2, 3), (3, 4), (4, 1), (2, 3), (5, 5)]
  assert pareto.non_dominated(points) == [(1, 5), (2, 3), (4, 1), (2, 3)]


def test_three_objectives():
  points = [(1, 1, 3), (1, 2, 2), (2, 2, 3), (0, 5, 5)]
  assert pareto.non_dominated_mask(points) == [True, True, False, True]


def test_staircase_goes_right_then_down():
  xs, ys = pareto.staircase([(1, 3), (3, 1), (2, 2), (2.5, 2.5)])
  assert list(zip(xs, ys)) == [(1, 3), (2, 3), (2, 2), (3, 2), (3, 1)]


def test_single_point_staircase_and_set_dominance():
  assert pareto.staircase([(1, 2)]) == ([1], [2])
  assert pareto.set_dominates([(1, 1), (0, 3)], [(2, 2), (0.5, 3)])
  assert not pareto.set_dominates([(1, 1)], [(2, 2), (0.5, 3)])
  assert not pareto.set_dominates([(1, 1)], [])


def test_count_not_dominated_by_reference_front():
  scal = [(1, 4), (2, 2), (4, 1)]
  ptjf = [(1.5, 1.5), (3, 3), (2, 2), (0.5, 5)]
  assert pareto.count_not_dominated_by(ptjf, scal) == 3


def test_objective_count_mismatch_is_an_error():
  with pytest.raises(ValueError):
    pareto.dominates((1, 2), (1, 2, 3))
  with pytest.raises(ValueError):
    pareto.dominates((1,), (2,))
