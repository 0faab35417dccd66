"""`ptjf corpus build/verify` on tiny synthetic catalogs."""
import json
import re

import pytest

from mo_writer import write_mo
from ptjf.cli import main as ptjf_main
from ptjf.errors import UserError
from ptjf.tasks import corpus as corpus_lib
from ptjf.tasks import layout


def _locale(tmp_path, sizes={"fr": 300, "ro": 200, "sw": 30}):
  """Catalogs where English source i is shared by every language that has it."""
  root = tmp_path / "locale"
  for lang, n in sizes.items():
    pairs = {f"Message number {i}": f"{lang} message {i}" for i in range(n)}
    half = n // 2
    write_mo(root, lang, "one", dict(list(pairs.items())[:half]))
    write_mo(root, lang, "two", dict(list(pairs.items())[half:]))
  # duplicate sources: "Message number 0" has "fr message 0" twice and
  # "autre" once (the most frequent wins); "Message number 1" a 1-1 tie
  # with "a tie" (the smallest string wins).
  write_mo(root, "fr", "zdup", {"Message number 0": "autre",
                                "Message number 1": "a tie"})
  write_mo(root, "fr", "zdup2", {"Message number 0": "fr message 0"})
  return root


def _build(tmp_path, out="corpus", **kw):
  kw.setdefault("vocab_size", 400)
  kw.setdefault("validation_size", 10)
  kw.setdefault("test_size", 10)
  return corpus_lib.build_corpus(tmp_path / out, langs=["fr", "ro", "sw"],
                                 locale_dir=_locale(tmp_path), log=lambda s: None,
                                 **kw)


def _sources(path):
  return {l.split("\t")[0] for l in path.read_text().splitlines()}


def test_splits_are_disjoint_across_languages_and_mono(tmp_path):
  manifest = _build(tmp_path)
  c = layout.CorpusLayout(tmp_path / "corpus")
  # sw (30 pairs < 5 * 20) gets its own 3 + 3 held-out sources, which fr and
  # ro (who share them) then lose from training too: 300 - 20 - 6.
  assert manifest["counts"]["fr"] == {"train": 274, "validation": 10, "test": 10}
  assert manifest["counts"]["sw"]["validation"] == 3
  held = set()
  for lang in ("fr", "ro", "sw"):
    held |= _sources(c.pair_file(lang, "validation")) | _sources(c.pair_file(lang, "test"))
  for lang in ("fr", "ro", "sw"):
    assert not held & _sources(c.pair_file(lang, "train"))
  assert not held & set(c.mono_file("en", "train").read_text().splitlines())
  assert (_sources(c.pair_file("fr", "validation"))
          == _sources(c.pair_file("ro", "validation")))
  # dedup: one translation per source, the most frequent one
  fr = [l for f in ("train", "validation", "test")
        for l in c.pair_file("fr", f).read_text().splitlines()]
  assert len(fr) == len({l.split("\t")[0] for l in fr}) == 294
  assert "Message number 0\tfr message 0" in fr
  assert "Message number 1\ta tie" in fr


def test_subsample_is_fraction_of_biggest_train(tmp_path):
  manifest = _build(tmp_path, subsample="ro=0.1")
  assert manifest["counts"]["ro"]["train"] == 27  # 10% of fr's 274
  c = layout.CorpusLayout(tmp_path / "corpus")
  assert len(c.mono_file("ro", "train").read_text().splitlines()) == 27


def test_train_files_are_in_random_order_held_out_sorted(tmp_path):
  _build(tmp_path)
  c = layout.CorpusLayout(tmp_path / "corpus")
  for path in (c.pair_file("fr", "train"), c.mono_file("en", "train"), c.mono_file("fr", "train")):
    lines = path.read_text().splitlines()
    assert lines != sorted(lines)
    # No long sorted stretch: a random order of n lines has about n / 2 ascents.
    ascents = sum(a < b for a, b in zip(lines, lines[1:]))
    assert 0.35 < ascents / (len(lines) - 1) < 0.65
  validation = c.pair_file("fr", "validation").read_text().splitlines()
  assert validation == sorted(validation)


def test_same_hash_twice_and_up_to_date(tmp_path):
  a = _build(tmp_path, out="a")
  b = _build(tmp_path, out="b")
  assert a["corpus_hash"] == b["corpus_hash"]
  assert corpus_lib.corpus_hash(tmp_path / "a") == a["corpus_hash"]
  logs = []
  corpus_lib.build_corpus(tmp_path / "a", langs=["fr", "ro", "sw"],
                          locale_dir=tmp_path / "locale", vocab_size=400,
                          validation_size=10, test_size=10, log=logs.append)
  assert logs[0].startswith("corpus up to date")


def test_verify_detects_changed_catalog(tmp_path, capsys):
  _build(tmp_path)
  manifest = tmp_path / "corpus" / "manifest.json"
  assert ptjf_main(["corpus", "verify", str(manifest)]) == 0
  write_mo(tmp_path / "locale", "ro", "one", {"Changed": "Schimbat"})
  assert ptjf_main(["corpus", "verify", str(manifest)]) == 2
  assert "one.mo" in capsys.readouterr().err


@pytest.mark.parametrize("kw, match", [
    (dict(langs=["xx"]), "no catalogs for language 'xx'"),
    (dict(subsample="ro:0.1"), "bad subsample spec"),
    (dict(vocab_size=10), "too small"),
])
def test_user_errors(tmp_path, kw, match):
  args = dict(langs=["fr", "ro"], locale_dir=_locale(tmp_path), log=lambda s: None)
  args.update(kw)
  with pytest.raises(UserError, match=match):
    corpus_lib.build_corpus(tmp_path / "c", **args)


def test_missing_corpus_and_locale_dir(tmp_path):
  with pytest.raises(UserError, match="ptjf corpus build"):
    corpus_lib.corpus_hash(tmp_path / "nothing")
  with pytest.raises(UserError, match="locale dir"):
    corpus_lib.build_corpus(tmp_path / "c", locale_dir=tmp_path / "none")


def test_manifest_records_catalogs(tmp_path):
  manifest = _build(tmp_path)
  fr_one = [c for c in manifest["catalogs"]
            if c["language"] == "fr" and c["domain"] == "one"][0]
  assert fr_one["entries"] == 151 and fr_one["kept"] == 150
  assert len(fr_one["sha256"]) == 64
  assert manifest["outputs"]["pairs/en-fr/validation.tsv"]["lines"] == 10


def test_real_system_catalogs_if_present(tmp_path):
  import pathlib
  from ptjf.tasks import catalogs
  if catalogs.available_langs(pathlib.Path("/usr/share/locale")).count("sw") == 0:
    pytest.skip("no Swahili catalogs on this machine")
  manifest = corpus_lib.build_corpus(tmp_path / "real", langs=["sw"],
                                     vocab_size=400, log=lambda s: None)
  assert manifest["counts"]["sw"]["train"] > 10
  assert corpus_lib.verify(tmp_path / "real" / "manifest.json") == \
      manifest["corpus_hash"]


def test_build_summary_counts_mislabelled_catalog_entries(tmp_path):
  from mo_writer import mo_bytes
  locale = _locale(tmp_path)
  entries = {b"": b"Content-Type: text/plain; charset=UTF-8\n",
             b"Summer": "Été".encode("latin-1"), b"Winter": b"Hiver"}
  (locale / "fr" / "LC_MESSAGES" / "latin.mo").write_bytes(mo_bytes(entries))
  lines = []
  manifest = corpus_lib.build_corpus(tmp_path / "c", langs=["fr", "ro", "sw"], locale_dir=locale,
                                     vocab_size=400, validation_size=10, test_size=10,
                                     log=lines.append)
  latin = [c for c in manifest["catalogs"] if c["domain"] == "latin"][0]
  assert latin["undecodable"] == 1 and latin["kept"] == 1
  assert any(l.startswith("dropped 1 entries of 1 catalogs whose bytes are not their declared "
                          "charset (e.g. ") and "latin.mo" in l for l in lines), lines
  c = layout.CorpusLayout(tmp_path / "c")
  assert not any("\ufffd" in c.pair_file("fr", s).read_text() for s in layout.SPLITS)


def test_unknown_language_names_the_nearest_codes(tmp_path):
  locale = _locale(tmp_path)
  for lang in ("aa", "ab", "af", "fr_CA", "ro_MD"):
    write_mo(locale, lang, "one", {"Hello": f"{lang} hello"})
  with pytest.raises(UserError, match=r"'fr_FR' .*the nearest codes there are fr, fr_CA;"):
    corpus_lib.build_corpus(tmp_path / "c", langs=["fr_FR"], locale_dir=locale)
  with pytest.raises(UserError, match=r"'xx' .*no code there is near it \(8 have catalogs\)"):
    corpus_lib.build_corpus(tmp_path / "c", langs=["xx"], locale_dir=locale)


def test_verify_takes_the_folder_and_a_truncated_manifest_is_one_line(tmp_path, capsys):
  _build(tmp_path)
  folder = tmp_path / "corpus"
  assert ptjf_main(["corpus", "verify", str(folder)]) == 0
  manifest = folder / "manifest.json"
  manifest.write_text(manifest.read_text()[:100])
  assert ptjf_main(["corpus", "verify", str(folder)]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "manifest.json is damaged" in err[0] and "--force" in err[0]
  _build(tmp_path)  # a damaged manifest is not up to date: rebuilt
  assert corpus_lib.verify(folder)


def test_a_language_with_no_pairs_fails_before_writing_anything(tmp_path):
  locale = _locale(tmp_path)
  write_mo(locale, "gd", "one", {"Hello": "", "Same": "Same"})
  with pytest.raises(UserError, match="catalogs of gd in .* give 0 translated pairs: leave it "
                     "out of --langs"):
    corpus_lib.build_corpus(tmp_path / "c", langs=["fr", "gd"], locale_dir=locale,
                            vocab_size=400, log=lambda s: None)
  assert not (tmp_path / "c").exists()


def test_a_failed_build_leaves_the_previous_corpus_whole(tmp_path, monkeypatch):
  manifest = _build(tmp_path)
  def disk_full(*args, **kwargs):
    raise OSError(28, "No space left on device")
  monkeypatch.setattr(corpus_lib.vocab_lib, "train_vocab", disk_full)
  with pytest.raises(OSError):
    _build(tmp_path, force=True)
  assert corpus_lib.verify(tmp_path / "corpus" / "manifest.json") == manifest["corpus_hash"]
  monkeypatch.undo()
  (tmp_path / "corpus" / "extra.txt").write_text("mine")
  assert _build(tmp_path, force=True)["corpus_hash"] == manifest["corpus_hash"]
  assert (tmp_path / "corpus" / "extra.txt").read_text() == "mine"
  assert not list(tmp_path.glob(".corpus.building"))


def test_a_corpus_in_use_is_never_rebuilt_under_its_runs(tmp_path, corpus_reader):
  _build(tmp_path)
  root = tmp_path / "corpus"
  files = {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and ".ptjf" not in str(p)}
  proc = corpus_reader(root)
  assert _build(tmp_path)["corpus_hash"]   # up to date: reused, in use or not
  with pytest.raises(UserError, match=re.escape(
      f"corpus {root} is in use by training runs/x/main (pid {proc.pid}): build into another "
      "folder (ptjf corpus build --out, ptjf demo --corpus-dir), or wait until they finish")):
    _build(tmp_path, force=True)
  assert {p: p.read_bytes() for p in files} == files   # not a byte changed
  assert not (tmp_path / ".corpus.building").exists()
  _build(tmp_path, out="corpus2", force=True)   # the fix: another folder
  proc.stdin.close()
  proc.wait()
  _build(tmp_path, force=True)   # no reader left (its lock died with it): rebuilt
