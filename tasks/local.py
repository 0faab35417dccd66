"""SeqIO tasks over a local corpus directory built by `ptjf corpus build`.

For a corpus with pairs en-fr, en-ro and mono text en, fr, ro:

    translate_en_fr, translate_en_ro            inputs English, targets translation
    span_corruption_en, _fr, _ro                T5 span corruption of the mono text

All share the corpus SentencePiece model plus `outputs.EXTRA_IDS` sentinel ids,
so any of them can be mixed. Each split's `num_input_examples` is its line
count, so `seqio.mixing_rate_num_examples` works without caching.
"""
import functools
import pathlib
import re
import sys

import seqio
import tensorflow as tf

from ptjf import locks
from ptjf.errors import UserError
from ptjf.tasks import layout, outputs, preprocessors

# task name -> what it was registered from; re-registering the same is a no-op.
_REGISTERED: dict[str, tuple] = {}


def corpus_layout(corpus_dir: str | pathlib.Path | None = None
                  ) -> layout.CorpusLayout:
  """The layout of `corpus_dir` (default `layout.default_corpus_dir()`), checked."""
  root = pathlib.Path(corpus_dir) if corpus_dir else layout.default_corpus_dir()
  corpus = layout.CorpusLayout(root.resolve())
  if not corpus.vocab_model.is_file():
    raise UserError(f"no built corpus at {root} (missing {corpus.vocab_model}): "
                    f"run `ptjf corpus build` or set ${layout.CORPUS_DIR_ENV}")
  return corpus


def vocabulary(corpus_dir: str | pathlib.Path | None = None
               ) -> seqio.SentencePieceVocabulary:
  """The vocabulary of every local task: corpus model + EXTRA_IDS sentinels."""
  return seqio.SentencePieceVocabulary(
      str(corpus_layout(corpus_dir).vocab_model), extra_ids=outputs.EXTRA_IDS)


def count_lines(path: pathlib.Path) -> int:
  """Lines as `tf.data.TextLineDataset` reads them (a last line may lack "\\n")."""
  count, last = 0, b"\n"
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      count += block.count(b"\n")
      last = block[-1:]
  return count + (last != b"\n")


class ShuffledTextLineSource(seqio.TextLineDataSource):
  """Lines of text files; shuffled, over the whole split.

  SeqIO shuffles a task's examples with a buffer of 1,000 after tokenizing, so the first draws
  of a larger file come from its first lines. Here the lines themselves are shuffled with a
  buffer as large as the split (strings, before tokenizing: cheap), so every draw is uniform over
  the split from the first one on, and each epoch is a new order (the seed sets them all).
  """

  def get_dataset(self, split: str = "train", shuffle: bool = True, seed: int | None = None,
                  shard_info: seqio.ShardInfo | None = None, **kwargs) -> tf.data.Dataset:
    ds = super().get_dataset(split, shuffle, seed, shard_info, **kwargs)
    if shuffle:
      ds = ds.shuffle(max(self.num_input_examples(split) or 1, 1), seed=seed)
    return ds


def _task_files(corpus: layout.CorpusLayout) -> dict[str, tuple[str, dict]]:
  """Task name -> (kind "translate" | "span_corruption" and lang, split files)."""
  files = {}
  for lang in corpus.pair_langs():
    splits = {s: corpus.pair_file(lang, s) for s in layout.SPLITS}
    files[layout.translate_task_name(lang)] = (
        ("translate", lang), {s: p for s, p in splits.items() if p.is_file()})
  for lang in corpus.mono_langs():
    splits = {s: corpus.mono_file(lang, s) for s in layout.SPLITS}
    files[layout.span_corruption_task_name(lang)] = (
        ("span_corruption", lang), {s: p for s, p in splits.items() if p.is_file()})
  return files


def _make_task(name: str, kind: str, lang: str, split_files: dict,
               vocab: seqio.Vocabulary, prefix: str) -> seqio.Task:
  source = ShuffledTextLineSource(
      split_to_filepattern={s: str(p) for s, p in split_files.items()},
      num_input_examples={s: count_lines(p) for s, p in split_files.items()})
  if kind == "translate":
    return seqio.Task(
        name, source=source, output_features=outputs.output_features(vocab),
        preprocessors=preprocessors.translation_steps(functools.partial(
            preprocessors.split_tsv_pair, prefix=prefix)),
        metric_fns=[outputs.bleu_metric(lang)])
  return seqio.Task(
      name, source=source, output_features=outputs.output_features(vocab),
      preprocessors=preprocessors.span_corruption_steps(), metric_fns=[])


def _this_process() -> str:
  """What this process is, for a corpus's user lines: the MODEL_DIR a trainer (`ptjf train`,
  T5X) writes, else its command line."""
  command = " ".join(sys.argv)
  model_dir = re.search(r"MODEL_DIR\s*=\s*['\"]?([^'\"\s]+)", command)
  return f"training {model_dir[1]}" if model_dir else command[:120]


def register_local_tasks(corpus_dir: str | pathlib.Path | None = None,
                         prefix: str = preprocessors.TARGET_TAG) -> list[str]:
  """Registers every task of the corpus in SeqIO's registry; returns their names.

  Idempotent: calling again with the same corpus (unchanged files) and prefix
  does nothing; another corpus or prefix replaces the tasks of the same name.
  The corpus is read (`locks.read_until_exit`) until this process exits: `ptjf
  corpus build` will not change it under these tasks.
  `prefix` goes before the English input of translation tasks, `{lang}` replaced
  by the target language: by default the target-language tag "<2fr> " that
  tells a one-to-many model which language to write (Johnson et al., 2017);
  e.g. "translate English to {lang}: " for T5-style models, "" for none.
  """
  corpus = corpus_layout(corpus_dir)
  # The tasks re-open the corpus files every epoch: it must not change while this process runs.
  locks.read_until_exit(corpus.root, lambda users: print(
      f"corpus {corpus.root} is being rebuilt ({'; '.join(users)}); waiting for it",
      file=sys.stderr, flush=True), _this_process())
  vocab = None
  names = []
  for name, ((kind, lang), split_files) in sorted(_task_files(corpus).items()):
    if not split_files:
      continue
    names.append(name)
    stats = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size)
                  for p in [corpus.vocab_model, *sorted(split_files.values())])
    key = (str(corpus.root), prefix, stats)
    if _REGISTERED.get(name) == key and name in seqio.TaskRegistry.names():
      continue
    vocab = vocab or vocabulary(corpus.root)
    seqio.TaskRegistry.remove(name)
    seqio.TaskRegistry.add_provider(
        name, _make_task(name, kind, lang, split_files, vocab, prefix.format(lang=lang)))
    _REGISTERED[name] = key
  if not names:
    raise UserError(f"corpus {corpus.root} has no pairs/ or mono/ data: "
                    "run `ptjf corpus build`")
  return names


def train_size(name: str, unit: str,
               corpus_dir: str | pathlib.Path | None = None) -> int:
  """Size of a local task's train split in `unit` ("examples" | "characters").

  Characters count the text the task learns to produce: the translations of a
  translate task, the whole text of a span corruption task (UniMax's unit).
  """
  corpus = corpus_layout(corpus_dir)
  files = _task_files(corpus)
  if name not in files:
    raise UserError(f"unknown local task {name!r}: available: "
                    f"{', '.join(sorted(files))}")
  (kind, _), split_files = files[name]
  if "train" not in split_files:
    raise UserError(f"task {name!r} has no train split in {corpus.root}: "
                    "rebuild the corpus with `ptjf corpus build`")
  path = split_files["train"]
  if unit == "examples":
    return count_lines(path)
  if unit != "characters":
    raise UserError(f"unknown size unit {unit!r}: use 'examples' or 'characters'")
  with open(path, encoding="utf-8") as f:
    if kind == "translate":
      return sum(len(line.rstrip("\n").split("\t", 1)[-1]) for line in f)
    return sum(len(line.rstrip("\n")) for line in f)
