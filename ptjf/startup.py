"""What every `ptjf` process does first: die with the launcher that started it, and keep
TensorFlow's start-up noise off the terminal and the phase logs.

A launcher starts each trainer with `PARENT_ENV` set to its own pid (`child_env`); the trainer
asks the kernel for SIGKILL when that parent dies (PR_SET_PDEATHSIG, kept across the
allocator's re-exec), so a killed sweep leaves no trainer writing into its runs directory.
"""
import contextlib
import ctypes
import importlib
import importlib.abc
import importlib.machinery
import os
import signal
import sys
from typing import Iterator, Mapping

PARENT_ENV = "PTJF_PARENT_PID"
_PR_SET_PDEATHSIG = 1


def child_env(env: Mapping[str, str]) -> dict[str, str]:
  """`env` for a child that must not outlive this process (see `die_with_parent`)."""
  return {**env, PARENT_ENV: str(os.getpid())}


def die_with_parent() -> None:
  """If started by a launcher (`PARENT_ENV`), be killed when it dies; exit now if it already
  has. The variable is removed so this process's own children do not inherit it."""
  parent = os.environ.pop(PARENT_ENV, None)
  if parent is None or not sys.platform.startswith("linux"):
    return
  libc = ctypes.CDLL(None, use_errno=True)
  libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
  if os.getppid() != int(parent):  # the launcher died before prctl took effect
    os._exit(1)


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
  """File descriptor 2 to /dev/null (C++ logging writes there directly)."""
  sys.stderr.flush()
  saved = os.dup(2)
  with open(os.devnull, "w") as null:
    os.dup2(null.fileno(), 2)
  try:
    yield
  finally:
    os.dup2(saved, 2)
    os.close(saved)


class _QuietTensorFlow(importlib.abc.MetaPathFinder, importlib.abc.Loader):
  """Imports TensorFlow, the first time anything does, with stderr silenced: its C++ libraries
  log ~6 lines (oneDNN, CUDA drivers) through absl before TF_CPP_MIN_LOG_LEVEL is read."""

  def find_spec(self, name, path, target=None):
    if name != "tensorflow":
      return None
    sys.meta_path.remove(self)
    with _stderr_silenced():
      importlib.import_module("tensorflow")
    return importlib.machinery.ModuleSpec(name, self)

  def create_module(self, spec):
    return sys.modules[spec.name]

  def exec_module(self, module):
    pass


def quiet_tensorflow() -> None:
  """Silences TensorFlow's start-up logs; call before anything imports it."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  if "tensorflow" not in sys.modules and not any(
      isinstance(f, _QuietTensorFlow) for f in sys.meta_path):
    sys.meta_path.insert(0, _QuietTensorFlow())
