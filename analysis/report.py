"""`ptjf report`: one self-contained HTML page + markdown summary of a RUNS_DIR.

The page holds, per experiment, the headline numbers, the figures (inline
base64 PNG; PNG and SVG files are also written next to it), a table of runs
and, per run, its corpus hash and configuration in a <details> block.
"""
import base64
import html
import json
import pathlib

from ptjf import logdir
from ptjf.analysis import events as events_lib
from ptjf.analysis import figures
from ptjf.analysis import numbers as numbers_lib
from ptjf.analysis import pareto
from ptjf.analysis import runs as runs_lib
from ptjf.errors import UserError

_CSS = """body{font-family:sans-serif;max-width:1200px;margin:2em auto;
color:#222}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid
#bbb;padding:3px 8px;text-align:right}th{background:#eef}
td:nth-child(-n+3){text-align:left}
img{max-width:100%;border:1px solid #ddd;margin:.5em 0}pre{background:#f6f6f6;
padding:.5em;overflow-x:auto;font-size:12px}details{margin:.3em 0}
.num{font-size:1.05em}.verdict{font-size:1.2em;font-weight:bold}"""


def _by_experiment(phases, rows):
  """{experiment: (phases, rows)} in name order."""
  out = {}
  for p in phases:
    out.setdefault(p.experiment, ([], []))[0].append(p)
  for r in rows:
    if r.experiment in out:
      out[r.experiment][1].append(r)
  return dict(sorted(out.items()))


def _high_task(phases, low: str) -> str | None:
  """The other task with the largest mean rate (the high-resource one)."""
  tasks = [t for t in numbers_lib.tasks_of(phases) if t != low]
  if not tasks:
    return None
  mean = {t: sum(p.rates.get(t, 0.0) for p in phases) for t in tasks}
  return max(tasks, key=lambda t: (mean[t], t))


def _experiment_figures(phases, rows, numbers, out_dir) -> list[pathlib.Path]:
  """All figures that the experiment's data allows, saved; PNG paths."""
  low = numbers["low_task"]
  high = _high_task(phases, low)
  points = numbers_lib.run_points(phases, rows)
  best = numbers_lib.best_by_method(points, low)
  name = numbers["experiment"]
  made = []
  candidates = [("efficiency", figures.efficiency_figure(best, low)),
                ("languages", figures.language_bars_figure(
                    points, numbers_lib.tasks_of(phases)))]
  if high:
    candidates = [("tradeoff", figures.tradeoff_figure(points, low, high)),
                  ("bleu", figures.bleu_figure(points, low, high)),
                  ("pretrain_ablation",
                   figures.pretrain_ablation_figure(points, low, high))
                  ] + candidates
  for kind, fig in candidates:
    if fig is not None:
      made.append(figures.save(fig, out_dir, f"{name}_{kind}"))
  return made


def _runs_table(phases, rows, low: str) -> str:
  """HTML table of runs with final validation losses (and whether no
  scalarization run dominates them), then per-run details."""
  points = numbers_lib.run_points(phases, rows)
  tasks = numbers_lib.tasks_of(phases)
  losses = lambda p: tuple(p.final.get(("validation", events_lib.LOSS, t))
                           for t in tasks)
  scal = [losses(p) for p in points if p.method == numbers_lib.SCALARIZATION
          and None not in losses(p)]
  head = "".join(f"<th>{html.escape(t)} val loss</th>" for t in tasks)
  body = []
  for p in sorted(points, key=lambda p: (p.label, p.rates.get(low, 0.0))):
    cells = "".join(f"<td>{numbers_lib._fmt(v)}</td>" for v in losses(p))
    free = (len(tasks) > 1 and None not in losses(p)
            and pareto.count_not_dominated_by([losses(p)], scal) == 1)
    rates = ", ".join(f"{t}: {r:g}" for t, r in p.rates.items())
    body.append(f"<tr><td>{html.escape(p.run)}</td><td>{html.escape(p.label)}"
                f"</td><td>{html.escape(rates)}</td><td>{p.total_steps}</td>"
                f"{cells}<td>{'yes' if free else ''}</td></tr>")
  details = []
  for ph in phases:
    meta_file = ph.path / logdir.PHASE_FILE
    meta = (json.dumps(json.loads(meta_file.read_text()), indent=1)
            if meta_file.is_file() else "(no ptjf_phase.json)")
    details.append(
        f"<details><summary>{html.escape(ph.run)} / {html.escape(ph.phase)} "
        f"&mdash; {html.escape(ph.method)}, corpus hash "
        f"<code>{html.escape(str(ph.corpus_hash))}</code></summary>"
        f"<p><code>{html.escape(str(ph.path))}</code></p>"
        f"<pre>{html.escape(meta)}</pre>"
        f"<pre>{html.escape(ph.config_text or '(no config.gin)')}</pre>"
        "</details>")
  return ("<table><tr><th>run</th><th>method</th><th>rates</th>"
          f"<th>total steps</th>{head}<th>not dominated by scalarization"
          f"</th></tr>{''.join(body)}</table>"
          "<h3>Runs: corpus and configuration</h3>" + "".join(details))


def _numbers_html(numbers: dict) -> str:
  """The headline numbers as an HTML table plus bullet lines."""
  fmt = numbers_lib._fmt
  rows = "".join(
      f"<tr><td>{html.escape(m)}</td><td>{fmt(numbers['best_low_loss'].get(m))}"
      f"</td><td>{html.escape(numbers['best_run'].get(m, '-'))}</td>"
      f"<td>{fmt(numbers['compute_steps'].get(m))}</td></tr>"
      for m in sorted(set(numbers["best_low_loss"])
                      | set(numbers["compute_steps"])))
  bullets = [html.escape(line) for line in numbers_lib.summary_lines(numbers)]
  return (f"<p class=num>Low-resource task: <code>"
          f"{html.escape(numbers['low_task'])}</code></p><table><tr>"
          "<th>method</th><th>best low-resource val loss</th><th>run</th>"
          f"<th>compute (steps)</th></tr>{rows}</table><ul>"
          + "".join(f"<li>{b}</li>" for b in bullets) + "</ul>")


def _experiments(runs_dir, low_task: str | None, csv_path=None):
  """(experiment, phases, rows, numbers or the UserError that stopped them)
  per experiment; raises the first error if no experiment can be analysed
  (e.g. only single-task runs and no --low-task). Writes the tidy table to
  csv_path if given."""
  phases, rows = events_lib.read_runs(runs_dir)
  if csv_path:
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    events_lib.write_csv(rows, csv_path)
  out, errors = [], []
  for experiment, (exp_phases, exp_rows) in _by_experiment(phases,
                                                           rows).items():
    try:
      numbers = numbers_lib.experiment_numbers(exp_phases, exp_rows, low_task)
    except UserError as e:
      errors.append(e)
      numbers = e
    out.append((experiment, exp_phases, exp_rows, numbers))
  if len(errors) == len(out):
    raise errors[0]
  return out


def _img(png: pathlib.Path) -> str:
  """An inline base64 <figure> of a saved PNG, linking its SVG twin."""
  data = base64.b64encode(png.read_bytes()).decode()
  name = html.escape(png.stem)
  return (f"<figure><img alt='{name}' src='data:image/png;base64,{data}'>"
          f"<figcaption>{name} (<a href='{name}.svg'>svg</a>)</figcaption>"
          "</figure>")


def write_report(runs_dir, out_dir=None, low_task: str | None = None
                 ) -> pathlib.Path:
  """Write report.html, report.md and the figures; returns the HTML path.

  out_dir defaults to RUNS_DIR/report (./report for a bucket, gs://...); the
  tidy table of every scalar goes to scalars.csv there. An experiment that
  cannot be analysed (say, single-task runs only) is listed with the reason
  instead.
  """
  out = pathlib.Path(out_dir or (pathlib.Path(runs_dir) / "report"
                                 if runs_lib.is_local(runs_dir) else "report"))
  experiments = _experiments(runs_dir, low_task, out / "scalars.csv")
  verdicts = [v for *_, numbers in experiments if not isinstance(numbers, UserError)
              and (v := numbers_lib.verdict(numbers))]
  sections, markdown = [], [f"# ptjf report: {runs_dir}\n", *(f"**{v}**\n" for v in verdicts)]
  for experiment, exp_phases, exp_rows, numbers in experiments:
    head = f"<h2>{html.escape(experiment)}</h2>"
    if isinstance(numbers, UserError):
      reason = str(numbers).splitlines()[0]
      sections.append(f"{head}<p>not analysed: {html.escape(reason)}</p>"
                      f"<h3>Runs</h3>{_runs_table(exp_phases, exp_rows, '')}")
      markdown.append(f"## {experiment}\n\nnot analysed: {reason}\n")
      continue
    pngs = _experiment_figures(exp_phases, exp_rows, numbers, out)
    sections.append(
        f"{head}{_numbers_html(numbers)}{''.join(_img(p) for p in pngs)}"
        "<h3>Runs</h3>"
        f"{_runs_table(exp_phases, exp_rows, numbers['low_task'])}")
    markdown.append(numbers_lib.numbers_markdown(numbers))
    markdown.append("Figures: " + ", ".join(f"`{p.name}`" for p in pngs) + "\n")
  page = (f"<!doctype html><html><head><meta charset='utf-8'><title>ptjf "
          f"report</title><style>{_CSS}</style></head><body><h1>ptjf report"
          "</h1>" + "".join(f"<p class=verdict>{html.escape(v)}</p>" for v in verdicts)
          + f"<p><code>{html.escape(str(runs_dir))}</code> &mdash; every "
          "scalar as a tidy table: <a href='scalars.csv'>scalars.csv</a>; "
          "examples seen are counted within each phase</p>"
          + "".join(sections) + "</body></html>")
  out.mkdir(parents=True, exist_ok=True)
  (out / "report.md").write_text("\n".join(markdown))
  path = out / "report.html"
  path.write_text(page)
  return path


def best_low_resource_losses(runs_dir, low_task: str | None = None
                             ) -> dict[str, float]:
  """Best final low-resource validation loss per method (as named in
  ptjf_phase.json, scalarization lengths merged), over all experiments under
  runs_dir, e.g. {"ptjf": 2.17, "restart": 2.46, "scalarization": 2.40}."""
  out: dict[str, float] = {}
  for _, exp_phases, exp_rows, numbers in _experiments(runs_dir, low_task):
    if isinstance(numbers, UserError):
      continue
    for point in numbers_lib.run_points(exp_phases, exp_rows):
      loss = numbers_lib.low_loss(point, numbers["low_task"])
      if loss is not None:
        out[point.method] = min(loss, out.get(point.method, loss))
  return dict(sorted(out.items()))
