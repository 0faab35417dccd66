"""What every ptjf task emits and how it is scored: output features, metrics.

All tasks share one layout so any of them can be mixed: "inputs" and "targets"
as int32 SentencePiece ids with EOS (id 1) appended.
"""
import functools
from typing import Callable

import seqio
import sacrebleu

# T5's sentinel convention: the extra ids are the last ids of the vocabulary,
# <extra_id_0> = vocab_size - 1. Used by local vocabularies that have none.
EXTRA_IDS = 100


def output_features(vocabulary: seqio.Vocabulary) -> dict[str, seqio.Feature]:
  """{"inputs", "targets"}: ids in `vocabulary`, EOS appended."""
  return {key: seqio.Feature(vocabulary, add_eos=True, dtype="int32")
          for key in ("inputs", "targets")}


def bleu(targets: list[str], predictions: list[str],
         tokenize: str = "13a") -> dict[str, float]:
  """Corpus BLEU (sacrebleu, 0-100) of decoded predictions against targets.

  A SeqIO metric fn; use tokenize="zh" for Chinese. Identical lists give 100.0.
  """
  score = sacrebleu.corpus_bleu(predictions, [targets], tokenize=tokenize)
  return {"bleu": score.score}


def bleu_metric(lang: str) -> Callable[[list[str], list[str]], dict[str, float]]:
  """The metric fn of a translation task into `lang`: `bleu` with sacrebleu's "zh" tokenizer
  for Chinese (however the language is spelled: "zh", "zh_CN"), else "13a"."""
  return functools.partial(bleu, tokenize="zh" if lang.lower().startswith("zh") else "13a")
