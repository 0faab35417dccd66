"""Headless Debian Chromium for tests that must see a page render."""
import pathlib
import subprocess
import tempfile

import pytest

CHROMIUM = pathlib.Path("/usr/bin/chromium")

needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(),
                                    reason="needs /usr/bin/chromium (apt-get install chromium)")


def screenshot_colours(page: pathlib.Path, out_dir: pathlib.Path) -> int:
  """Renders `page` headless to out_dir/shot.png; returns how many colours it shows."""
  from PIL import Image
  shot = out_dir / "shot.png"
  subprocess.run(
      [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
       "--disable-background-networking", "--disable-component-update", "--disable-sync",
       "--no-first-run", f"--user-data-dir={tempfile.mkdtemp(dir=out_dir)}",
       f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri()],
      check=True, capture_output=True, timeout=120)
  colours = Image.open(shot).convert("RGB").getcolors(maxcolors=1 << 20)
  return len(colours) if colours is not None else 1 << 20
