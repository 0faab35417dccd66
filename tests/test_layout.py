"""The corpus layout fixture really produces the documented files."""
from ptjf.tasks import layout


def test_tiny_corpus_has_every_documented_file(tiny_corpus):
  assert tiny_corpus.pair_langs() == ["fr", "ro"]
  assert tiny_corpus.mono_langs() == ["en", "fr", "ro"]
  for lang in ("fr", "ro"):
    for split in layout.SPLITS:
      assert tiny_corpus.pair_file(lang, split).read_text().count("\t") > 0
  assert tiny_corpus.vocab_model.exists()
  n_train = len(tiny_corpus.pair_file("ro", "train").read_text().splitlines())
  assert n_train == 40


def test_task_names_are_lower_case():
  assert layout.translate_task_name("zh_CN") == "translate_en_zh_cn"
