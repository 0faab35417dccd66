"""Host memory for XLA:CPU: transparent huge pages for glibc's large allocations.

XLA:CPU allocates a step's large temporary buffers with `malloc` and frees
them after the step; glibc serves each from a fresh `mmap`, so every step
faults in and zeroes its temporaries again in 4 KiB pages. For the bench
model that is ~340,000 page faults and 0.8-1.0 s of kernel time per
2.6-2.9 s step (docs/bench.md). glibc's tunable `glibc.malloc.hugetlb=1` (glibc >= 2.35)
asks the kernel for transparent huge pages on those mappings (THP mode
`madvise` or `always`): 2 MiB pages, ~260x fewer faults. Elsewhere it is
ignored and changes nothing.

Tunables are read when a process starts, so `reexec_tuned()` restarts the
program once with them set. A user's own `glibc.malloc.hugetlb` setting
(e.g. `GLIBC_TUNABLES=glibc.malloc.hugetlb=0`, the opt-out) is left as is.
"""
import os
import sys
from typing import Mapping

TUNABLE = "glibc.malloc.hugetlb=1"
_ADDED = "PTJF_ADDED_GLIBC_TUNABLE"  # set when TUNABLE was added by ptjf


def tuned_env(env: Mapping[str, str]) -> dict[str, str]:
  """`env` with TUNABLE appended to GLIBC_TUNABLES, unless hugetlb is set.

  >>> tuned_env({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})["GLIBC_TUNABLES"]
  'glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1'
  >>> tuned_env({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"})["GLIBC_TUNABLES"]
  'glibc.malloc.hugetlb=0'
  """
  current = env.get("GLIBC_TUNABLES", "")
  if "glibc.malloc.hugetlb=" in current:
    return dict(env)
  return {**env, "GLIBC_TUNABLES": ":".join(filter(None, [current, TUNABLE])),
          _ADDED: "1"}


def untuned_env(env: Mapping[str, str]) -> dict[str, str]:
  """`env` as the user gave it: without the tunable ptjf added.

  >>> untuned_env(tuned_env({"HOME": "/root"}))
  {'HOME': '/root'}
  """
  out = dict(env)
  if out.pop(_ADDED, None):
    kept = [t for t in out.get("GLIBC_TUNABLES", "").split(":")
            if t and t != TUNABLE]
    if kept:
      out["GLIBC_TUNABLES"] = ":".join(kept)
    else:
      out.pop("GLIBC_TUNABLES", None)
  return out


def reexec_tuned() -> None:
  """Restarts this program with `tuned_env` if that changes it (Linux only).

  Call it early in a program's entry point (the new process repeats all that
  ran before it); it replaces the process, so never call it from a library
  or a test.
  """
  if not sys.platform.startswith("linux"):
    return
  env = tuned_env(os.environ)
  if env.get("GLIBC_TUNABLES") != os.environ.get("GLIBC_TUNABLES"):
    sys.stdout.flush()
    os.execve(sys.executable, sys.orig_argv, env)
