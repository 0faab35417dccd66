"""Folder locks (ptjf.locks): one writer of a MODEL_DIR, readers or one builder of a corpus."""
import os
import signal
import subprocess
import sys

import pytest

from ptjf import locks

# Takes `exclusive` of a folder; prints "waiting" if it must, then "held".
_TAKER = """import sys
from ptjf import locks
with locks.exclusive(sys.argv[1], lambda users: print("waiting", users, flush=True)):
  print("held", flush=True)
"""


def test_a_trainer_uses_the_lock_its_launcher_handed_it_and_others_wait(tmp_path):
  with locks.exclusive(tmp_path, lambda users: pytest.fail("free")) as fd:
    handed = subprocess.run([sys.executable, "-P", "-c", _TAKER, str(tmp_path)], pass_fds=(fd,),
                            env={**os.environ, **locks.inherit(fd)}, capture_output=True,
                            text=True, timeout=60)
    assert handed.stdout == "held\n"
    other = subprocess.Popen([sys.executable, "-P", "-c", _TAKER, str(tmp_path)],
                             stdout=subprocess.PIPE, text=True)
    assert other.stdout.readline() == "waiting []\n"
  assert other.stdout.readline() == "held\n" and other.wait(60) == 0


def _refuse(users: list[str]) -> None:
  raise RuntimeError(f"in use by {users}")


def test_a_killed_reader_leaves_no_lock_and_no_user_line(tmp_path, corpus_reader):
  proc = corpus_reader(tmp_path)
  assert locks.users(tmp_path) == [f"training runs/x/main (pid {proc.pid})"]
  with pytest.raises(RuntimeError, match=r"in use by \['training"):   # a build is refused
    with locks.exclusive(tmp_path, _refuse):
      pass
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert locks.users(tmp_path) == []
  assert not list((tmp_path / locks.USERS_DIR).iterdir())
  with locks.exclusive(tmp_path, lambda users: pytest.fail("still held"), who="ptjf corpus build"):
    assert locks.users(tmp_path) == [f"ptjf corpus build (pid {os.getpid()})"]


def test_a_folder_left_with_only_its_lock_is_removed(tmp_path):
  with locks.exclusive(tmp_path / "run", lambda users: pytest.fail("free")):
    pass   # e.g. `ptjf train` refused its configuration
  assert not (tmp_path / "run").exists()
  with locks.exclusive(tmp_path / "run", lambda users: pytest.fail("free")):
    (tmp_path / "run" / "config.gin").write_text("")
  assert (tmp_path / "run" / "config.gin").is_file()
