"""Where a built corpus keeps its files, and the names of the tasks made from it.

One corpus directory holds everything `ptjf corpus build` writes:

    <corpus_dir>/manifest.json                    catalogs, hashes, counts
    <corpus_dir>/pairs/en-<lang>/<split>.tsv      "english<TAB>translation" per line
    <corpus_dir>/mono/<lang>/<split>.txt          one segment per line
    <corpus_dir>/vocab/spm.model                  the shared SentencePiece model

Splits are "train", "validation" and "test". Languages keep their locale
spelling ("fr", "zh_CN"); task names lower-case them:

>>> translate_task_name("zh_CN")
'translate_en_zh_cn'
>>> span_corruption_task_name("gd")
'span_corruption_gd'
"""
import dataclasses
import os
import pathlib

SPLITS = ("train", "validation", "test")
SOURCE_LANG = "en"
DEFAULT_CORPUS_DIR = "data/corpus"
CORPUS_DIR_ENV = "PTJF_CORPUS_DIR"


def default_corpus_dir() -> pathlib.Path:
  """$PTJF_CORPUS_DIR if set, else ./data/corpus."""
  return pathlib.Path(os.environ.get(CORPUS_DIR_ENV, DEFAULT_CORPUS_DIR))


def translate_task_name(lang: str) -> str:
  return f"translate_{SOURCE_LANG}_{lang.lower()}"


def span_corruption_task_name(lang: str) -> str:
  return f"span_corruption_{lang.lower()}"


@dataclasses.dataclass(frozen=True)
class CorpusLayout:
  """Paths inside one corpus directory."""
  root: pathlib.Path

  @property
  def manifest(self) -> pathlib.Path:
    return self.root / "manifest.json"

  @property
  def vocab_model(self) -> pathlib.Path:
    return self.root / "vocab" / "spm.model"

  def pair_file(self, lang: str, split: str) -> pathlib.Path:
    return self.root / "pairs" / f"{SOURCE_LANG}-{lang}" / f"{split}.tsv"

  def mono_file(self, lang: str, split: str) -> pathlib.Path:
    return self.root / "mono" / lang / f"{split}.txt"

  def pair_langs(self) -> list[str]:
    """Target languages that have parallel data, sorted."""
    pairs = self.root / "pairs"
    if not pairs.is_dir():
      return []
    return sorted(p.name.split("-", 1)[1] for p in pairs.iterdir()
                  if p.is_dir() and p.name.startswith(f"{SOURCE_LANG}-"))

  def mono_langs(self) -> list[str]:
    """Languages that have monolingual text, sorted."""
    mono = self.root / "mono"
    return sorted(p.name for p in mono.iterdir()) if mono.is_dir() else []
