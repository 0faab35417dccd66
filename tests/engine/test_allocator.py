"""The process restart that sets glibc's huge-page tunable for XLA's buffers."""
import os
import subprocess
import sys

import pytest

from ptjf.engine import allocator

_PRINT_AFTER_RESTART = ("from ptjf.engine import allocator; allocator.reexec_tuned(); "
                        "import os; print(os.environ.get('GLIBC_TUNABLES'))")


def _run(env_tunables):
  env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", allocator._ADDED)}
  if env_tunables is not None:
    env["GLIBC_TUNABLES"] = env_tunables
  out = subprocess.run([sys.executable, "-c", _PRINT_AFTER_RESTART], env=env,
                       capture_output=True, text=True, check=True)
  return out.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc tunables are Linux's")
def test_restart_adds_the_tunable_once_and_keeps_the_users_own():
  assert _run(None) == allocator.TUNABLE
  assert _run("glibc.malloc.arena_max=2") == "glibc.malloc.arena_max=2:" + allocator.TUNABLE
  assert _run("glibc.malloc.hugetlb=0") == "glibc.malloc.hugetlb=0"  # the opt-out


def test_untuned_env_gives_back_the_users_setting():
  user = {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2", "HOME": "/root"}
  assert allocator.untuned_env(allocator.tuned_env(user)) == user
  assert allocator.untuned_env(user) == user
