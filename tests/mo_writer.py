"""Writes tiny compiled gettext catalogs (.mo) for tests of the corpus builder."""
import pathlib
import struct


def mo_bytes(entries: dict[bytes, bytes]) -> bytes:
  """A little-endian .mo file holding `entries` (msgid -> msgstr, raw bytes)."""
  keys = sorted(entries)
  header_size = 7 * 4
  orig_off = header_size
  trans_off = orig_off + 8 * len(keys)
  data_off = trans_off + 8 * len(keys)
  blob, orig, trans = b"", [], []
  for k in keys:
    orig.append((len(k), data_off + len(blob)))
    blob += k + b"\0"
  for k in keys:
    v = entries[k]
    trans.append((len(v), data_off + len(blob)))
    blob += v + b"\0"
  out = struct.pack("<7I", 0x950412de, 0, len(keys), orig_off, trans_off, 0, 0)
  for length, off in orig + trans:
    out += struct.pack("<2I", length, off)
  return out + blob


def header(charset: str = "UTF-8") -> bytes:
  return (f"Project-Id-Version: test\nContent-Type: text/plain; "
          f"charset={charset}\n").encode("ascii")


def write_mo(locale_dir: pathlib.Path, lang: str, domain: str,
             pairs: dict[str, str], charset: str = "UTF-8") -> pathlib.Path:
  """Writes <locale_dir>/<lang>/LC_MESSAGES/<domain>.mo with a header."""
  path = locale_dir / lang / "LC_MESSAGES" / f"{domain}.mo"
  path.parent.mkdir(parents=True, exist_ok=True)
  entries = {b"": header(charset)}
  entries.update({k.encode("utf-8"): v.encode(charset) for k, v in pairs.items()})
  path.write_bytes(mo_bytes(entries))
  return path
