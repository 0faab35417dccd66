"""The paper's figures from run points: trade-off fronts, efficiency curves,
per-language bars, the pre-training length ablation and BLEU fronts.

Every figure function returns a matplotlib Figure (Agg backend) or None when
the runs hold nothing to draw; `save` writes it as PNG and SVG.
"""
import pathlib

from ptjf.analysis import events as events_lib
from ptjf.analysis import numbers as numbers_lib
from ptjf.analysis import pareto

_MARKERS = {"scalarization": "o", "ptjf": "*", "restart": "D", "transfer": "^",
            "schedule": "P"}
_FRONT_COLORS = {"scalarization": "tab:blue", "ptjf": "tab:red",
                 "restart": "black", "transfer": "tab:green",
                 "schedule": "tab:orange", numbers_lib.PTJF_AUTO: "tab:brown"}
_OTHER_MARKERS = "sPvhX<>"


def _plt():
  """pyplot on the Agg backend (no display needed)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  return plt


def style(label: str, labels: list[str]) -> dict:
  """Marker and edge of a method label: scalarization N circle, N+N2 square,
  PTJF star (automatic switch: brown), restart black-bordered diamond,
  schedule plus, others from a fixed cycle."""
  base = label.split(" ")[0]
  scal = sorted((l for l in labels if l.split(" ")[0] == "scalarization"),
                key=lambda l: int(l.split(" ")[1]) if " " in l else 0)
  if base == "scalarization" and len(scal) > 1:
    marker = "os^v"[scal.index(label) % 4]
  elif base in _MARKERS:
    marker = _MARKERS[base]
  else:
    marker = _OTHER_MARKERS[sorted(labels).index(label) % len(_OTHER_MARKERS)]
  edge = "black" if base == "restart" else "none"
  color = _FRONT_COLORS.get(label, _FRONT_COLORS.get(base, "tab:gray"))
  if base == "scalarization" and len(scal) > 1:
    color = ["tab:blue", "tab:cyan", "tab:purple", "tab:olive"][
        scal.index(label) % 4]
  return {"marker": marker, "edgecolor": edge, "front_color": color}


def save(fig, out_dir: pathlib.Path, name: str) -> pathlib.Path:
  """Write fig as name.png and name.svg under out_dir; returns the PNG path."""
  out_dir.mkdir(parents=True, exist_ok=True)
  png = out_dir / f"{name}.png"
  fig.savefig(png, dpi=110, bbox_inches="tight")
  fig.savefig(out_dir / f"{name}.svg", bbox_inches="tight")
  _plt().close(fig)
  return png


def _front_panel(ax, points, key, low, high, xlabel, ylabel, title,
                 maximise=False, best_line=None):
  """One scatter + per-method staircase panel; returns the scatter mappable."""
  labels = sorted({p.label for p in points})
  mappable = None
  fronts = []
  for label in labels:
    pts = [(key(p, high), key(p, low), p.rates.get(low, 0.0)) for p in points
           if p.label == label]
    pts = [t for t in pts if t[0] is not None and t[1] is not None]
    if not pts:
      continue
    st = style(label, labels)
    top = max(0.5, max(p.rates.get(low, 0) for p in points))
    size = 140 if st["marker"] == "*" else 60
    mappable = ax.scatter([t[0] for t in pts], [t[1] for t in pts],
                          c=[t[2] for t in pts], cmap="viridis", vmin=0,
                          vmax=top, marker=st["marker"], s=size,
                          edgecolors=st["edgecolor"], linewidths=1.2,
                          label=label, zorder=3)
    fronts.append(([(x, y) for x, y, _ in pts], st["front_color"]))
  _draw_fronts(ax, fronts, maximise)
  if best_line is not None:
    ax.axhline(best_line, color="gray", ls="--", lw=1,
               label="best scalarization low-resource")
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  ax.legend(handles=_legend_handles(ax, labels, best_line is not None),
            fontsize=7, loc="best")
  return mappable


def _draw_fronts(ax, fronts, maximise: bool = False) -> None:
  """Each (points, colour) front as a staircase out to the edges of `ax`'s
  current view (which it keeps), so a front of one point shows as a corner."""
  sign = -1 if maximise else 1
  xlim, ylim = ax.get_xlim(), ax.get_ylim()
  right, top = max(sign * v for v in xlim), max(sign * v for v in ylim)
  for pts, color in fronts:
    xs, ys = pareto.staircase([(sign * x, sign * y) for x, y in pts], right, top)
    ax.plot([sign * x for x in xs], [sign * y for y in ys], color=color,
            lw=1.2, alpha=0.8, zorder=2)
  ax.set_xlim(xlim)
  ax.set_ylim(ylim)


def _legend_handles(ax, labels, with_best_line):
  """Legend entries in neutral grey (point colour means rate, not method),
  each with its method's front colour as the marker edge."""
  from matplotlib.lines import Line2D
  handles = []
  for label in labels:
    st = style(label, labels)
    handles.append(Line2D([], [], ls="-", lw=1.2, color=st["front_color"],
                          marker=st["marker"], markerfacecolor="lightgray",
                          markeredgecolor=(st["edgecolor"] if st["edgecolor"]
                                           != "none" else st["front_color"]),
                          markersize=10 if st["marker"] == "*" else 7,
                          label=label))
  if with_best_line:
    handles += [h for h in ax.get_legend_handles_labels()[0]
                if h.get_label().startswith("best scalarization")]
  return handles


def _final(split: str, metric: str):
  """A key function: the run's final value of metric on a task and split."""
  return lambda p, task: p.final.get((split, metric, task))


def tradeoff_figure(points, low: str, high: str):
  """Validation loss low vs high per run (and the training-split panel when
  `training_eval_train` exists), each method's front, the best scalarization
  low-resource line, colour = low-resource rate."""
  plt = _plt()
  splits = [("validation", "validation loss")]
  if any(("train", events_lib.LOSS, low) in p.final for p in points):
    splits.append(("train", "training-split loss"))
  fig, axes = plt.subplots(1, len(splits), figsize=(6 * len(splits), 4.8),
                           squeeze=False)
  scal = [numbers_lib.low_loss(p, low) for p in points
          if p.method == numbers_lib.SCALARIZATION]
  best = min((s for s in scal if s is not None), default=None)
  mappable = None
  for ax, (split, name) in zip(axes[0], splits):
    mappable = _front_panel(
        ax, points, _final(split, events_lib.LOSS), low, high, f"{high} {name}",
        f"{low} {name}", name,
        best_line=best if split == "validation" else None)
  if mappable is None:
    plt.close(fig)
    return None
  fig.colorbar(mappable, ax=list(axes[0]), label=f"{low} sampling rate")
  return fig


def bleu_figure(points, low: str, high: str):
  """BLEU of low vs high per run (higher is better) when BLEU was logged."""
  key = _final("inference", "bleu")
  have = [p for p in points if key(p, low) is not None and
          key(p, high) is not None]
  if not have:
    return None
  plt = _plt()
  fig, ax = plt.subplots(figsize=(6, 4.8))
  mappable = _front_panel(ax, have, key, low, high, f"{high} BLEU",
                          f"{low} BLEU", "BLEU (higher is better)",
                          maximise=True)
  fig.colorbar(mappable, ax=ax, label=f"{low} sampling rate")
  return fig


def efficiency_figure(best: dict, low: str):
  """Low-resource validation loss vs low-resource examples seen (log-log) of
  each method's best run; PTJF's curve is its fine-tune phase only."""
  plt = _plt()
  fig, ax = plt.subplots(figsize=(6, 4.5))
  labels = sorted(best)
  drawn = False
  for label in labels:
    whole = best[label].method != numbers_lib.PTJF
    curve = [c for c in numbers_lib.low_curve(best[label], low, whole) if c[0]]
    if not curve:
      continue
    st = style(label, labels)
    ax.plot([c[0] for c in curve], [c[1] for c in curve],
            marker=st["marker"], color=st["front_color"],
            label=f"{label} ({best[label].run})")
    drawn = True
  if not drawn:
    plt.close(fig)
    return None
  from matplotlib import ticker
  ax.set_xscale("log")
  ax.set_yscale("log")
  ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
  ax.xaxis.set_major_formatter(ticker.ScalarFormatter())
  ax.xaxis.set_minor_formatter(ticker.NullFormatter())
  ax.yaxis.set_major_formatter(ticker.ScalarFormatter())
  ax.yaxis.set_minor_formatter(ticker.ScalarFormatter())
  ax.set_xlabel(f"{low} examples seen")
  ax.set_ylabel(f"{low} validation loss")
  ax.set_title("data efficiency (best run per method)")
  ax.legend(fontsize=7)
  return fig


def language_bars_figure(points, tasks: list[str]):
  """Grouped bars: best final validation loss per task (language) per method;
  drawn for three or more tasks (the multi-language setting)."""
  if len(tasks) < 3:
    return None
  plt = _plt()
  labels = sorted({p.label for p in points})
  fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(tasks) * len(labels) / 2),
                                  4.5))
  width = 0.8 / max(1, len(labels))
  for i, label in enumerate(labels):
    values = []
    for task in tasks:
      losses = [p.final.get(("validation", events_lib.LOSS, task))
                for p in points if p.label == label]
      values.append(min((l for l in losses if l is not None),
                        default=float("nan")))
    ax.bar([t + i * width for t in range(len(tasks))], values, width,
           label=label, color=style(label, labels)["front_color"])
  ax.set_xticks([t + width * (len(labels) - 1) / 2 for t in range(len(tasks))])
  ax.set_xticklabels(tasks, rotation=20, ha="right")
  ax.set_ylabel("best validation loss")
  ax.set_title("best validation loss per language")
  ax.legend(fontsize=7)
  return fig


def pretrain_ablation_figure(points, low: str, high: str):
  """The pre-training length ablation (paper Figure 9): left, the validation
  trade-off of PTJF runs with one front per pre-training length, against the
  scalarization front in grey; right, PTJF's best final validation loss of
  each task vs pre-training steps. Drawn when PTJF runs start from two or
  more pre-training lengths."""
  ptjf = [p for p in points if p.method == numbers_lib.PTJF]
  lengths = sorted({p.parent_steps for p in ptjf})
  if len(lengths) < 2:
    return None
  plt = _plt()
  key = _final("validation", events_lib.LOSS)
  fig, (front_ax, ax) = plt.subplots(1, 2, figsize=(12, 4.5))
  groups = [("scalarization", "gray", "o",
             [p for p in points if p.method == numbers_lib.SCALARIZATION])]
  cmap = plt.get_cmap("plasma")
  groups += [(f"PTJF, pre-train {n}", cmap(i / max(1, len(lengths))), "*",
              [p for p in ptjf if p.parent_steps == n])
             for i, n in enumerate(lengths)]
  fronts = []
  for name, color, marker, group in groups:
    pts = [(key(p, high), key(p, low)) for p in group]
    pts = [t for t in pts if None not in t]
    if not pts:
      continue
    front_ax.scatter(*zip(*pts), color=color, marker=marker,
                     s=120 if marker == "*" else 40, label=name, zorder=3)
    fronts.append((pts, color))
  _draw_fronts(front_ax, fronts)
  front_ax.set_xlabel(f"{high} validation loss")
  front_ax.set_ylabel(f"{low} validation loss")
  front_ax.set_title("fronts by pre-training length")
  front_ax.legend(fontsize=7)
  for task, color in ((low, "tab:red"), (high, "tab:blue")):
    best = []
    for n in lengths:
      vals = [key(p, task) for p in ptjf if p.parent_steps == n]
      best.append(min((v for v in vals if v is not None), default=float("nan")))
    ax.plot(lengths, best, marker="o", color=color, label=task)
  ax.set_xlabel("pre-training steps")
  ax.set_ylabel("best PTJF validation loss")
  ax.set_title("pre-training length ablation")
  ax.legend(fontsize=7)
  return fig
