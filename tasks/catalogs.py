"""Reads compiled gettext catalogs (.mo) into clean (english, translation) pairs.

Why: every Linux install ships thousands of human translations of UI strings
under /usr/share/locale; they make a real, offline, imbalanced multilingual
corpus. Only the standard library is used (the .mo format is parsed with
`struct`).

Cleaning, applied to both sides of a pair:
  * msgctxt (`ctx\\x04msgid`) is dropped; plurals pair msgid with form 0 and
    msgid_plural with form 1.
  * markup tags (`<b>`, `<span ...>`) are removed, entities unescaped.
  * keyboard accelerators (`_File`, `&Yes`, `~Open`) lose their marker and
    CJK-style ones (`文件(_F)`) go entirely; `&&` becomes `&`; `_` inside or
    doubled before identifiers (`file_name`, `__init`) is kept.
  * every format placeholder (`%s`, `%1$s`, `%(name)s`, `%-5.2f`, `%_d`,
    `%B`, `{0}`, `{name}`, `${var}`, `%%`; `%` + flags + one letter) becomes the single token `<x>`, so both sides
    agree without the model having to copy arbitrary format syntax.
  * whitespace runs collapse to one space.
Pairs with an empty or untranslated (== source) side, or with no letter left
after masking, are dropped, as are entries whose bytes are not text in the
catalog's declared charset (e.g. Latin-1 bytes in a catalog labelled UTF-8:
they would become U+FFFD); `Catalog.undecodable` counts those.

>>> clean_text("Save _As…")
'Save As…'
>>> clean_text("Copied %d of %s to <b>{dest}</b>")
'Copied <x> of <x> to <x>'
"""
import dataclasses
import html
import pathlib
import re
import struct
import warnings

PLACEHOLDER = "<x>"
_MAGIC_LE = 0x950412de

_PLACEHOLDER_RE = re.compile(
    r"%%"                                       # literal percent
    r"|%(?:\d+\$)?(?:\([A-Za-z_][\w.]*\))?[-+#0'_^]*(?:\d+|\*)?"
    r"(?:\.(?:\d+|\*))?[A-Za-z]"  # printf, python %, strftime, bfd's %B/%C...
    r"|\$\{[^{}\s]+\}"                          # ${var}
    r"|\{[A-Za-z_0-9][\w.\[\]:!]*\}")           # {0}, {name}, {0:>3}
_TAG_RE = re.compile(r"</?[A-Za-z][\w:-]*(?:\s[^<>]*)?/?>")
_ACCEL_RE = re.compile(r"(?<![\w&])(?:[_~]|&(?!#?\w+;))(?=[^\W_])")
_CJK_ACCEL_RE = re.compile(r"\s*[(（][_&~][A-Za-z0-9][)）]")  # 文件(_F)
_LETTER_RE = re.compile(r"[^\W\d_]")


def clean_text(text: str) -> str:
  """One catalog string as training text (see the module docstring)."""
  text = _PLACEHOLDER_RE.sub("\x00", text)
  text = _TAG_RE.sub("", text)
  text = text.replace("&&", "\x01")
  text = _CJK_ACCEL_RE.sub("", text)
  text = _ACCEL_RE.sub("", text)  # before unescaping; `&amp;` is kept
  text = html.unescape(text).replace("\x01", "&")
  text = " ".join(text.split())
  return text.replace("\x00", PLACEHOLDER)


def has_letters(text: str) -> bool:
  """True when the text has a letter outside placeholders."""
  return bool(_LETTER_RE.search(text.replace(PLACEHOLDER, "")))


@dataclasses.dataclass
class Catalog:
  """The cleaned pairs of one .mo file, and how many entries it held."""
  path: pathlib.Path
  lang: str
  entries: int
  pairs: list[tuple[str, str]]
  undecodable: int = 0  # entries dropped: bytes not in the declared charset

  @property
  def domain(self) -> str:
    return self.path.stem


def _charset(header: str) -> str:
  match = re.search(r"charset=\s*([-\w.:]+)", header, re.IGNORECASE)
  charset = match.group(1) if match else "utf-8"
  return "utf-8" if charset.upper() == "CHARSET" else charset


def read_mo_entries(data: bytes) -> list[tuple[bytes, bytes]]:
  """Raw (msgid, msgstr) byte strings of a .mo file; ValueError if corrupt."""
  if len(data) < 20:
    raise ValueError("file too short for a .mo header")
  for order in ("<", ">"):
    magic, _, count, orig_off, trans_off = struct.unpack(order + "5I", data[:20])
    if magic == _MAGIC_LE:
      break
  else:
    raise ValueError("bad magic number")
  out = []
  try:
    for i in range(count):
      olen, ooff = struct.unpack_from(order + "2I", data, orig_off + 8 * i)
      tlen, toff = struct.unpack_from(order + "2I", data, trans_off + 8 * i)
      if ooff + olen > len(data) or toff + tlen > len(data):
        raise ValueError(f"entry {i} points outside the file")
      out.append((data[ooff:ooff + olen], data[toff:toff + tlen]))
  except struct.error as e:
    raise ValueError(f"truncated table: {e}") from e
  return out


def _raw_pairs(entries, charset: str):
  """(msgid, translation) strings: contexts dropped, plurals split; None for
  an entry whose bytes do not decode."""
  for msgid, msgstr in entries:
    if not msgid:
      continue  # the header
    try:
      source = msgid.decode("utf-8")  # msgids are ASCII/UTF-8
      target = msgstr.decode(charset)
    except UnicodeDecodeError:
      yield None
      continue
    source = source.split("\x04", 1)[-1]
    sources = source.split("\x00")
    targets = target.split("\x00")
    if len(sources) == 1:
      yield sources[0], targets[0]
    else:
      for s, t in zip(sources[:2], targets[:2]):
        yield s, t


def read_catalog(path: pathlib.Path, lang: str) -> Catalog:
  """Parses and cleans one .mo file; raises ValueError when it is corrupt."""
  entries = read_mo_entries(path.read_bytes())
  header = next((t for s, t in entries if not s), b"").decode("ascii", "replace")
  charset = _charset(header)
  try:
    "".encode(charset)
  except LookupError:
    charset = "utf-8"
  pairs, undecodable = [], 0
  for pair in _raw_pairs(entries, charset):
    if pair is None:
      undecodable += 1
      continue
    s, t = clean_text(pair[0]), clean_text(pair[1])
    if s and t and s != t and has_letters(s) and has_letters(t):
      pairs.append((s, t))
  return Catalog(path, lang, len(entries), pairs, undecodable)


def catalog_files(locale_dir: pathlib.Path, lang: str) -> list[pathlib.Path]:
  """The .mo files of one language, sorted by name."""
  return sorted((locale_dir / lang / "LC_MESSAGES").glob("*.mo"))


def available_langs(locale_dir: pathlib.Path) -> list[str]:
  """Languages with at least one .mo file, sorted."""
  if not locale_dir.is_dir():
    return []
  return sorted(p.name for p in locale_dir.iterdir()
                if any((p / "LC_MESSAGES").glob("*.mo")))


def read_language(locale_dir: pathlib.Path, lang: str) -> list[Catalog]:
  """All readable catalogs of a language; corrupt files warn and are skipped."""
  out = []
  for path in catalog_files(locale_dir, lang):
    try:
      out.append(read_catalog(path, lang))
    except (ValueError, OSError) as e:
      warnings.warn(f"skipping corrupt catalog {path}: {e}")
  return out
