"""SeqIO tasks over TFDS data, for machines that have it (a cluster, a TPU VM).

    wmt15_translate_en_fr   tfds wmt15_translate/fr-en   train, validation, test
    wmt19_translate_en_zh   tfds wmt19_translate/zh-en   train, validation
    wmt16_translate_en_ro   tfds wmt16_translate/ro-en   train, validation, test
    wmt14_translate_en_hi   tfds wmt14_translate/hi-en   train, validation, test
    mc4_span_corruption_<lang> for en, hi, gu, gd, sw
                            tfds c4/multilingual, splits "<lang>" (train) and
                            "<lang>-validation" (validation)

Translation is English -> Xx. Nothing is registered at import and
registration reads nothing: TFDS and the SentencePiece model are opened when a
dataset is first built, from `data_dir` (default: TFDS's own, $TFDS_DATA_DIR).
mC4 tasks default to the mT5 vocabulary; WMT tasks need a vocabulary path.
"""
import dataclasses
import functools

import gin
import seqio

from ptjf.errors import UserError
from ptjf.tasks import outputs, preprocessors

MC4_VOCAB = "gs://t5-data/vocabs/mc4.250000.100extra/sentencepiece.model"
MC4_TFDS_VERSION = "3.1.0"   # mT5 itself used 3.0.1
MC4_LANGS = ("en", "hi", "gu", "gd", "sw")


@dataclasses.dataclass(frozen=True)
class WmtPair:
  """One WMT language pair in TFDS: `tfds_name` holds {lang: text, "en": text}."""
  tfds_name: str
  lang: str
  splits: tuple[str, ...]


WMT_TASKS = {
    "wmt15_translate_en_fr": WmtPair("wmt15_translate/fr-en:1.0.0", "fr",
                                     ("train", "validation", "test")),
    "wmt19_translate_en_zh": WmtPair("wmt19_translate/zh-en:1.0.0", "zh",
                                     ("train", "validation")),
    "wmt16_translate_en_ro": WmtPair("wmt16_translate/ro-en:1.0.0", "ro",
                                     ("train", "validation", "test")),
    "wmt14_translate_en_hi": WmtPair("wmt14_translate/hi-en:1.0.0", "hi",
                                     ("train", "validation", "test")),
}


def mc4_task_name(lang: str) -> str:
  return f"mc4_span_corruption_{lang}"


def cluster_task_names() -> list[str]:
  """Every cluster task this module can register."""
  return sorted(list(WMT_TASKS) + [mc4_task_name(l) for l in MC4_LANGS])


def _wmt_task(name: str, vocab: seqio.Vocabulary, data_dir: str | None,
              prefix: str) -> seqio.Task:
  pair = WMT_TASKS[name]
  return seqio.Task(
      name,
      source=seqio.TfdsDataSource(pair.tfds_name, tfds_data_dir=data_dir,
                                  splits=pair.splits),
      output_features=outputs.output_features(vocab),
      preprocessors=preprocessors.translation_steps(functools.partial(
          preprocessors.translation_pair, source="en", target=pair.lang,
          prefix=prefix.format(lang=pair.lang))),
      metric_fns=[outputs.bleu_metric(pair.lang)])


def _mc4_task(name: str, lang: str, vocab: seqio.Vocabulary,
              data_dir: str | None, version: str) -> seqio.Task:
  return seqio.Task(
      name,
      source=seqio.TfdsDataSource(
          f"c4/multilingual:{version}", tfds_data_dir=data_dir,
          splits={"train": lang, "validation": f"{lang}-validation"}),
      output_features=outputs.output_features(vocab),
      preprocessors=preprocessors.span_corruption_steps(), metric_fns=[])


@gin.configurable(module="ptjf.tasks.cluster")
def register_cluster_task(name: str, vocab_path: str | None = None,
                          data_dir: str | None = None,
                          prefix: str = preprocessors.TARGET_TAG,
                          mc4_version: str = MC4_TFDS_VERSION) -> str:
  """Registers one cluster task (replacing a previous one); returns its name.

  vocab_path: a SentencePiece model (local path or gs://); defaults to the mT5
  vocabulary for mC4 tasks and is required for WMT tasks. data_dir: the TFDS
  data directory. prefix: text before the English input of WMT tasks, `{lang}`
  replaced by the target language (default: the tag "<2fr> ", as local tasks).
  mc4_version: the c4/multilingual version prepared in data_dir.
  In gin: `ptjf.tasks.cluster.register_cluster_task.vocab_path = "..."`.
  """
  if name in WMT_TASKS:
    if not vocab_path:
      raise UserError(
          f"{name} needs a SentencePiece model: bind "
          "ptjf.tasks.cluster.register_cluster_task.vocab_path='<spm.model>'")
    task = _wmt_task(name, seqio.SentencePieceVocabulary(vocab_path),
                     data_dir, prefix)
  elif name in [mc4_task_name(l) for l in MC4_LANGS]:
    lang = name.removeprefix(mc4_task_name(""))
    task = _mc4_task(name, lang,
                     seqio.SentencePieceVocabulary(vocab_path or MC4_VOCAB),
                     data_dir, mc4_version)
  else:
    raise UserError(f"unknown cluster task {name!r}: available: "
                    f"{', '.join(cluster_task_names())}")
  seqio.TaskRegistry.remove(name)
  seqio.TaskRegistry.add_provider(name, task)
  return name
