"""Who may write a folder while others use it: a flock on DIR/.ptjf_lock.

- A phase's MODEL_DIR has one writer (`exclusive`): a sweep's launcher holds it while the
  phase trains and hands it to its trainer (`inherit`); a bare `ptjf train` takes it itself. A
  second launcher or `ptjf train` into the same MODEL_DIR waits for the first.
- A corpus directory has readers (`shared`: a sweep for as long as it runs; `read_until_exit`:
  a process that registered the corpus's tasks, whose files SeqIO re-opens every epoch) or one
  builder (`exclusive`: `ptjf corpus build`), never both. Each holder of a corpus lock leaves a
  line in DIR/.ptjf_users/ saying what it is, so a refused build names the runs in its way.

flock locks belong to an open file, not a process: the kernel drops them when their last
holder exits, even on kill -9, so a killed run leaves no stale lock (`users` drops the lines
of holders gone).
"""
import contextlib
import fcntl
import os
import pathlib
from typing import Callable, Iterator

LOCK_FILE = ".ptjf_lock"
USERS_DIR = ".ptjf_users"
INHERITED_ENV = "PTJF_LOCK_FD"  # the fd of a MODEL_DIR lock a launcher passes its trainer

Busy = Callable[[list[str]], None]  # gets the users in the way: raises to refuse, returns to wait
_reading: dict[pathlib.Path, tuple[int, int]] = {}  # read_until_exit: dir -> fds


def _open(directory: pathlib.Path) -> int:
  directory.mkdir(parents=True, exist_ok=True)
  return os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)


def _lock(fd: int, directory: pathlib.Path, mode: int, busy: Busy) -> None:
  try:
    fcntl.flock(fd, mode | fcntl.LOCK_NB)
  except BlockingIOError:
    busy(users(directory))
    fcntl.flock(fd, mode)


def _say_who(directory: pathlib.Path, lock_fd: int, who: str) -> int:
  """Writes the user line of one lock (itself locked while its writer lives); returns its fd."""
  users_dir = directory / USERS_DIR
  users_dir.mkdir(exist_ok=True)
  name = f"{os.getpid()}.{lock_fd}"
  partial = users_dir / f".{name}"
  fd = os.open(partial, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
  fcntl.flock(fd, fcntl.LOCK_EX)
  os.write(fd, f"{who} (pid {os.getpid()})".encode())
  partial.replace(users_dir / name)
  return fd


def _unsay(directory: pathlib.Path, lock_fd: int, line_fd: int | None) -> None:
  if line_fd is not None:
    (directory / USERS_DIR / f"{os.getpid()}.{lock_fd}").unlink(missing_ok=True)
    os.close(line_fd)


def users(directory: pathlib.Path | str) -> list[str]:
  """What the live holders of directory's lock said they are; lines of dead ones are removed."""
  found = []
  users_dir = pathlib.Path(directory) / USERS_DIR
  for path in sorted(users_dir.glob("[0-9]*")) if users_dir.is_dir() else []:
    try:
      f = open(path, "rb")
    except FileNotFoundError:  # its holder just let go
      continue
    with f:
      try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except BlockingIOError:
        found.append(f.read().decode(errors="replace").strip())
        continue
    path.unlink(missing_ok=True)  # its holder is gone
  return found


def inherit(fd: int) -> dict[str, str]:
  """Environment entries telling a child started with `pass_fds=(fd,)` that it holds lock fd."""
  return {INHERITED_ENV: str(fd)}


def _inherited(path: pathlib.Path) -> int | None:
  """The lock fd this process's launcher passed it, if it is `path`'s."""
  fd = os.environ.get(INHERITED_ENV, "")
  return int(fd) if fd.isdigit() and _same_file(int(fd), path) else None


@contextlib.contextmanager
def exclusive(directory: pathlib.Path | str, busy: Busy, who: str | None = None) -> Iterator[int]:
  """Holds directory's lock alone (yields its fd); while others hold it, calls `busy` first.
  `who`: leave a user line. A lock inherited from this process's launcher (`inherit`) is
  already held: it is used. This process's own `read_until_exit` of directory is given up
  (it is about to change what it read)."""
  directory = pathlib.Path(directory)
  inherited = _inherited(directory / LOCK_FILE)
  if inherited is not None:
    yield inherited
    return
  own = _reading.pop(directory.resolve(), None)
  if own:
    _unsay(directory, *own)
    os.close(own[0])
  while True:
    fd = _open(directory)
    try:
      _lock(fd, directory, fcntl.LOCK_EX, busy)
    except BaseException:
      os.close(fd)
      raise
    if _same_file(fd, directory / LOCK_FILE):
      break
    os.close(fd)  # its holder removed it (below) while this waited: lock the new one
  line = None
  try:
    line = _say_who(directory, fd, who) if who else None
    yield fd
  finally:
    _unsay(directory, fd, line)
    _remove_if_unused(directory)
    os.close(fd)


def _same_file(fd: int, path: pathlib.Path) -> bool:
  try:
    held, now = os.fstat(fd), os.stat(path)
  except OSError:
    return False
  return (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino)


def _remove_if_unused(directory: pathlib.Path) -> None:
  """Removes directory if it holds nothing but its lock (a run refused before writing
  anything leaves no empty folder behind); called with the lock held."""
  with contextlib.suppress(OSError):
    (directory / USERS_DIR).rmdir()  # if empty
  with contextlib.suppress(OSError):
    if os.listdir(directory) == [LOCK_FILE]:
      (directory / LOCK_FILE).unlink()
      directory.rmdir()


def _shared(directory: pathlib.Path, busy: Busy, who: str) -> tuple[int, int] | None:
  """(lock fd, user line fd) of a shared hold; None if directory cannot be written (then no
  one here can rebuild it either)."""
  if not directory.is_dir():
    return None
  try:
    fd = _open(directory)
  except OSError:
    return None
  try:
    _lock(fd, directory, fcntl.LOCK_SH, busy)
    return fd, _say_who(directory, fd, who)
  except OSError:
    os.close(fd)
    return None
  except BaseException:
    os.close(fd)
    raise


@contextlib.contextmanager
def shared(directory: pathlib.Path | str, busy: Busy, who: str) -> Iterator[None]:
  """Holds directory's lock with other readers; while a writer holds it, calls `busy` first."""
  directory = pathlib.Path(directory)
  held = _shared(directory, busy, who)
  try:
    yield
  finally:
    if held:
      _unsay(directory, *held)
      os.close(held[0])


def read_until_exit(directory: pathlib.Path | str, busy: Busy, who: str) -> None:
  """`shared` for the rest of this process (once per directory)."""
  directory = pathlib.Path(directory).resolve()
  if directory not in _reading:
    held = _shared(directory, busy, who)
    if held:
      _reading[directory] = held
