"""Pareto fronts for minimisation: non-dominated points, staircases, dominance.

A point a dominates b when a <= b in every objective and a < b in at least one
(all objectives are losses, lower is better).
"""
from typing import Sequence

Point = Sequence[float]


def dominates(a: Point, b: Point) -> bool:
  """True if a is no worse than b everywhere and strictly better somewhere.

  >>> [dominates(a, b) for a, b in [((1, 2), (2, 2)), ((1, 2), (1, 2)),
  ...                                ((1, 3), (2, 2))]]
  [True, False, False]
  """
  if len(a) != len(b) or len(a) < 2:
    raise ValueError(f"points need the same number (>= 2) of objectives: "
                     f"{a!r} vs {b!r}")
  return all(x <= y for x, y in zip(a, b)) and any(
      x < y for x, y in zip(a, b))


def non_dominated_mask(points: Sequence[Point]) -> list[bool]:
  """For each point, whether no other point dominates it (duplicates all kept).

  >>> non_dominated_mask([(1, 4), (2, 2), (3, 3), (4, 1), (2, 2)])
  [True, True, False, True, True]
  """
  return [not any(dominates(q, p) for q in points) for p in points]


def non_dominated(points: Sequence[Point]) -> list[Point]:
  """The non-dominated points, in input order.

  >>> non_dominated([(1, 4), (2, 2), (3, 3), (4, 1)])
  [(1, 4), (2, 2), (4, 1)]
  """
  return [p for p, keep in zip(points, non_dominated_mask(points)) if keep]


def staircase(points: Sequence[Point], right: float | None = None,
              top: float | None = None) -> tuple[list[float], list[float]]:
  """x, y of the 2-D front drawn as a staircase (for `plt.plot`).

  The front is sorted by x; between two front points the line goes right at
  the first point's y, then down, so the region above-right is what the front
  dominates. With `top` and `right` (the plot's edges) the line comes down
  from `top` to the first point and runs on from the last one to `right`,
  so that a one-point front is drawn too.

  >>> staircase([(3, 1), (1, 3), (2, 2), (3, 3)])
  ([1, 2, 2, 3, 3], [3, 3, 2, 2, 1])
  >>> staircase([(2, 2)], right=5, top=4)
  ([2, 2, 5], [4, 2, 2])
  """
  front = sorted({(p[0], p[1]) for p in non_dominated(points)})
  xs, ys = [], []
  for i, (x, y) in enumerate(front):
    if i:
      xs.append(x)
      ys.append(front[i - 1][1])
    xs.append(x)
    ys.append(y)
  if top is not None and xs:
    xs, ys = [xs[0], *xs], [top, *ys]
  if right is not None and xs:
    xs, ys = [*xs, right], [*ys, ys[-1]]
  return xs, ys


def count_not_dominated_by(points: Sequence[Point],
                           reference: Sequence[Point]) -> int:
  """How many of `points` no point of `reference` dominates.

  The paper's question: how many PTJF runs lie on or beyond the scalarization
  front. A point equal to a reference point counts as not dominated.

  >>> count_not_dominated_by([(0.5, 0.5), (3, 3), (1, 2)], [(1, 2), (2, 1)])
  2
  """
  return sum(not any(dominates(r, p) for r in reference) for p in points)


def set_dominates(a: Sequence[Point], b: Sequence[Point]) -> bool:
  """True if every point of b is dominated by some point of a (a weakly better
  front, strictly better somewhere for each of b's points).

  >>> set_dominates([(1, 1)], [(2, 2), (1, 3)])
  True
  >>> set_dominates([(1, 2)], [(2, 1)])
  False
  """
  return bool(b) and all(any(dominates(p, q) for p in a) for q in b)
