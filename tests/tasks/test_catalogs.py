"""Parsing and cleaning of compiled gettext catalogs."""
import pathlib

import pytest

from mo_writer import mo_bytes, write_mo
from ptjf.tasks import catalogs


@pytest.mark.parametrize("raw, clean", [
    ("_File", "File"),
    ("&Yes", "Yes"),
    ("~Open", "Open"),
    ("Save _As", "Save As"),
    ("file_name is set", "file_name is set"),
    ("Tom &amp; Jerry", "Tom & Jerry"),
    ("Cut && Paste", "Cut & Paste"),
    ("<b>Bold</b> and <span weight=\"bold\">x</span>y", "Bold and xy"),
    ("%s of %d, %1$s %(name)s %-5.2f 100%%", "<x> of <x>, <x> <x> <x> 100<x>"),
    ("{0} and {name} and ${var}", "<x> and <x> and <x>"),
    ("same as %_d, %B: 50% off", "same as <x>, <x>: 50% off"),
    ("文件(_F)", "文件"),
    ("call __tls_get_addr", "call __tls_get_addr"),
    ("  many \n  spaces\t", "many spaces"),
])
def test_clean_text(raw, clean):
  assert catalogs.clean_text(raw) == clean


def test_read_catalog_handles_ctx_plurals_untranslated_and_markup(tmp_path):
  path = write_mo(tmp_path, "fr", "app", {
      "menu\x04_Open": "_Ouvrir",
      "%d file\x00%d files": "%d fichier\x00%d fichiers",
      "Untranslated": "",
      "Same": "Same",
      "%s": "%s",  # no letters after masking
      "<b>Hello</b>": "<b>Bonjour</b>",
  })
  cat = catalogs.read_catalog(path, "fr")
  assert cat.domain == "app" and cat.entries == 7
  assert sorted(cat.pairs) == [("<x> file", "<x> fichier"),
                               ("<x> files", "<x> fichiers"),
                               ("Hello", "Bonjour"), ("Open", "Ouvrir")]


def test_non_utf8_charset_is_decoded(tmp_path):
  path = write_mo(tmp_path, "fr", "latin", {"Summer": "Été"},
                  charset="ISO-8859-1")
  assert path.read_bytes().count("Été".encode("latin-1")) == 1
  assert catalogs.read_catalog(path, "fr").pairs == [("Summer", "Été")]


def test_big_endian_file_is_read():
  data = mo_bytes({b"a": b"b"})
  import struct
  fields = struct.unpack("<7I", data[:28])
  table = struct.unpack("<4I", data[28:44])
  swapped = struct.pack(">7I", *fields) + struct.pack(">4I", *table) + data[44:]
  assert catalogs.read_mo_entries(swapped) == [(b"a", b"b")]


def test_corrupt_file_warns_and_is_skipped(tmp_path):
  write_mo(tmp_path, "fr", "good", {"Hello": "Bonjour"})
  bad = tmp_path / "fr" / "LC_MESSAGES" / "bad.mo"
  bad.write_bytes(b"\xde\x12\x04\x95" + b"\xff" * 30)
  with pytest.warns(UserWarning, match="bad.mo"):
    cats = catalogs.read_language(tmp_path, "fr")
  assert [c.domain for c in cats] == ["good"]


def test_real_system_catalog_if_present():
  files = catalogs.catalog_files(pathlib.Path("/usr/share/locale"), "fr")
  if not files:
    pytest.skip("no French catalogs on this machine")
  cat = catalogs.read_catalog(files[0], "fr")
  assert cat.entries > 0
  assert all(s and t and s != t for s, t in cat.pairs)


def test_latin1_bytes_labelled_utf8_are_dropped_and_counted(tmp_path):
  path = write_mo(tmp_path, "fr", "mislabelled", {"Hello": "Bonjour"})
  data = path.read_bytes()   # swap in a Latin-1 entry under the UTF-8 label
  entries = dict(catalogs.read_mo_entries(data))
  entries[b"Summer"] = "Été".encode("latin-1")
  path.write_bytes(mo_bytes(entries))
  cat = catalogs.read_catalog(path, "fr")
  assert cat.pairs == [("Hello", "Bonjour")] and cat.undecodable == 1
  assert not any("\ufffd" in t for _, t in cat.pairs)
