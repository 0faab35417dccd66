"""ptjf's gin files: where they are, and the ALL_CAPS macros a configuration defines and uses.

The gin files are data (the top-level `gin/` folder; `ptjf/gin/` in an installed wheel), not a
Python package, so `import gin` gives gin-config wherever Python runs.

gin takes `TRAIN_STESP = 20` as a new macro that nothing reads (the run trains the default
1,000 steps) and `%EVAL_PERIDO` fails only when the trainer calls it. `check` refuses both
with one line naming the closest known macro:

>>> closest("TRAIN_STESP", {"TRAIN_STEPS", "BATCH_SIZE"})
'TRAIN_STEPS'
"""
import ast
import difflib
import os
import pathlib
import re
import tokenize
from typing import Any, Iterable, Mapping, Sequence

from gin import config_parser

from ptjf.errors import UserError


def gin_dir() -> pathlib.Path:
  """The folder of ptjf's gin files: package data in an installed wheel, else the checkout's
  `gin/` (an editable install runs from the checkout)."""
  package = pathlib.Path(__file__).resolve().parent
  return package / "gin" if (package / "gin").is_dir() else package.parent / "gin"


def local_default(name: str) -> Any:
  """A macro's value in local/base.gin (the local engine's defaults), or None.

  >>> local_default("LABEL_SMOOTHING"), local_default("EVAL_PERIOD")
  (0.1, 100)
  """
  text = (gin_dir() / "local" / "base.gin").read_text()
  match = re.search(rf"^{name}\s*=\s*([^#\n]+)", text, re.MULTILINE)
  return ast.literal_eval(match.group(1).strip()) if match else None


class _Recorder(config_parser.ParserDelegate):
  """Parses gin text without binding anything, noting each `%MACRO` used."""

  def __init__(self):
    self.used: set[str] = set()

  def configurable_reference(self, scoped_configurable_name, evaluate):
    return None

  def macro(self, macro_name):
    if "." not in macro_name:  # not %gin.REQUIRED or a gin.constant
      self.used.add(macro_name)
    return None


Recorded = Mapping[str, tuple[set[str], set[str]]]


def scan(text: str, where: str, search_paths: Sequence[str] = (),
         recorded: Recorded = {}) -> tuple[set[str], set[str]]:
  """(macros defined, macros used) by gin `text`, following its `include`s on `search_paths`;
  an include found on none of them is taken from `recorded` (file name -> (defined, used)), if
  there (T5X's own files where T5X is not installed: `launch.t5x.recorded_t5x_macros`).

  A syntax error is a UserError naming `where` and the line.
  """
  recorder, defined = _Recorder(), set()
  try:
    for statement in config_parser.ConfigParser(text, recorder):
      if isinstance(statement, config_parser.BindingStatement) and not statement.arg_name:
        defined.add(f"{statement.scope}/{statement.selector}" if statement.scope
                    else statement.selector)
      elif isinstance(statement, config_parser.IncludeStatement):
        path = next((os.path.join(base, statement.filename) for base in ("", *search_paths)
                     if os.path.isfile(os.path.join(base, statement.filename))), None)
        more_defined, more_used = (read(path, search_paths, recorded) if path
                                   else recorded.get(statement.filename, (set(), set())))
        defined |= more_defined  # a missing include is gin's own one-line error later
        recorder.used |= more_used
  except SyntaxError as e:
    why = ("not a Python literal: write numbers as numbers (nan, inf and calls are not gin)"
           if e.msg.startswith("malformed node") else e.msg)
    raise UserError(f"{where} is not valid gin (line {e.lineno}: {why}): fix that line") from None
  except tokenize.TokenError as e:
    raise UserError(f"{where} is not valid gin (line {e.args[1][0]}: {e.args[0]}): close the "
                    "bracket or quote") from None
  return defined, recorder.used


def read(path: str, search_paths: Sequence[str] = (),
         recorded: Recorded = {}) -> tuple[set[str], set[str]]:
  """`scan` of a gin file."""
  with open(path, encoding="utf-8") as f:
    return scan(f.read(), path, search_paths, recorded)


def closest(name: str, known: Iterable[str]) -> str | None:
  """The known macro most like `name`, if any is close."""
  match = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
  return match[0] if match else None


def refuse_unknown(names: Iterable[str], known: set[str], where: str) -> None:
  """UserError for the first of `names` not in `known`, naming the closest known macro."""
  for name in sorted(set(names) - known):
    near = closest(name, known)
    hint = f"did you mean {near}?" if near else f"use one of {', '.join(sorted(known))}"
    raise UserError(f"unknown gin macro {name} in {where}: {hint}")


def check(files: Sequence[str], bindings: Sequence[str], search_paths: Sequence[str] = (),
          recorded: Recorded = {}, where: str = "--gin_bindings / --gin.NAME") -> None:
  """UserError unless every macro the bindings set is defined or used by a file or binding,
  and every `%MACRO` used is defined somewhere (`recorded`: as for `scan`; `where`: what the
  user wrote the bindings as)."""
  defined, used = set(), set()
  for path in files:
    if os.path.isfile(path):  # a missing file is gin's own one-line error later
      more_defined, more_used = read(path, search_paths, recorded)
      defined, used = defined | more_defined, used | more_used
  bound, bound_used = set(), set()
  for binding in bindings:
    more_bound, more_used = scan(binding, f"--gin_bindings {binding!r}", search_paths)
    bound, bound_used = bound | more_bound, bound_used | more_used
  refuse_unknown(bound, defined | used | bound_used, where)
  for name in sorted(used | bound_used):
    if name not in defined | bound:
      near = closest(name, defined | bound)
      hint = f"did you mean %{near}?" if near else f"define it with --gin.{name}=VALUE"
      raise UserError(f"gin macro %{name} is used but never defined: {hint}")
