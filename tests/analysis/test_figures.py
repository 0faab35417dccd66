"""Trade-off figures drawn from hand-made run summaries."""
from ptjf.analysis import events
from ptjf.analysis import figures
from ptjf.analysis import numbers

HIGH, LOW = "translate_en_fr", "translate_en_ro"


def _point(run: str, method: str, high: float, low: float) -> numbers.RunPoint:
  final = {("validation", events.LOSS, HIGH): high, ("validation", events.LOSS, LOW): low}
  return numbers.RunPoint(experiment="x", run=run, method=method, label=method,
                          last_phase="main", rates={LOW: 0.2}, parent_steps=0,
                          total_steps=100, final=final, rows=[], all_rows=[])


def test_one_point_front_is_drawn_to_the_edges():
  points = [_point("scal", numbers.SCALARIZATION, 3.0, 4.0),
            _point("a", numbers.PTJF, 3.5, 4.2), _point("b", numbers.PTJF, 4.0, 4.1)]
  ax = figures.tradeoff_figure(points, LOW, HIGH).axes[0]
  (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
  assert x0 < 3.0 and x1 > 4.0 and y0 < 4.0 and y1 > 4.2  # every point in view
  lines = {tuple(zip(*line.get_data())) for line in ax.get_lines()}
  assert ((3.0, y1), (3.0, 4.0), (x1, 4.0)) in lines  # scalarization's corner
  assert ((3.5, y1), (3.5, 4.2), (4.0, 4.2), (4.0, 4.1), (x1, 4.1)) in lines
