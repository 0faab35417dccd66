"""Local SeqIO tasks over the tiny synthetic corpus."""
import os

import numpy as np
import seqio

import pytest

from ptjf import locks
from ptjf.errors import UserError
from ptjf.tasks import layout, local, outputs
from synthetic_corpus import write_synthetic_corpus

LENGTHS = {"inputs": 32, "targets": 32}
NAMES = ["span_corruption_en", "span_corruption_fr", "span_corruption_ro",
         "translate_en_fr", "translate_en_ro"]


@pytest.fixture(scope="module")
def names(tiny_corpus):
  return local.register_local_tasks(tiny_corpus.root)


def test_registers_every_language_once(tiny_corpus, names):
  assert names == NAMES
  task = seqio.TaskRegistry.get("translate_en_fr")
  assert local.register_local_tasks(tiny_corpus.root) == NAMES
  assert seqio.TaskRegistry.get("translate_en_fr") is task  # idempotent


def test_a_process_that_registered_a_corpus_reads_it_until_it_exits(tiny_corpus, names):
  mine = [u for u in locks.users(tiny_corpus.root) if u.endswith(f"(pid {os.getpid()})")]
  assert len(mine) == 1   # `ptjf corpus build` elsewhere is refused, naming this process
  local.register_local_tasks(tiny_corpus.root)
  assert locks.users(tiny_corpus.root) == mine   # once per process


def test_sizes_for_seqio_mixing_rates(names):
  task = seqio.get_mixture_or_task("translate_en_fr")
  assert task.splits == ("train", "validation", "test")
  assert task.num_input_examples("train") == 400
  assert task.num_input_examples("validation") == 20
  assert seqio.mixing_rate_num_examples(
      seqio.get_mixture_or_task("translate_en_ro")) == 40


def test_translation_examples(tiny_corpus, names):
  task = seqio.get_mixture_or_task("translate_en_ro")
  vocab = task.output_features["targets"].vocabulary
  assert vocab.vocab_size >= outputs.EXTRA_IDS
  first = tiny_corpus.pair_file("ro", "validation").read_text().splitlines()[0]
  english, romanian = first.split("\t")
  ex = next(task.get_dataset(LENGTHS, split="validation", shuffle=False)
            .as_numpy_iterator())
  assert vocab.decode(ex["inputs"].tolist()) == f"<2ro> {english}"
  pieces = [vocab.tokenizer.id_to_piece(int(i)) for i in ex["inputs"][:2]]
  assert "<2ro>" in pieces  # the tag is one piece
  assert vocab.decode(ex["targets"].tolist()) == romanian
  assert ex["inputs"][-1] == ex["targets"][-1] == 1  # EOS
  bleu = task.metric_fns[0]([romanian], [romanian])
  assert bleu == {"bleu": pytest.approx(100.0)}


def test_optional_prefix(tiny_corpus, names):
  prefix = "translate English to Romanian "  # ":" is unknown to the tiny vocab
  local.register_local_tasks(tiny_corpus.root, prefix=prefix)
  task = seqio.get_mixture_or_task("translate_en_ro")
  ex = next(task.get_dataset(LENGTHS, split="test", shuffle=False)
            .as_numpy_iterator(), None)
  vocab = task.output_features["inputs"].vocabulary
  assert vocab.decode(ex["inputs"].tolist()).startswith(prefix.strip())
  local.register_local_tasks(tiny_corpus.root)
  ex = next(seqio.get_mixture_or_task("translate_en_ro")
            .get_dataset(LENGTHS, split="test", shuffle=False).as_numpy_iterator())
  assert not vocab.decode(ex["inputs"].tolist()).startswith("translate")


def test_span_corruption_examples(names):
  task = seqio.get_mixture_or_task("span_corruption_fr")
  vocab_size = task.output_features["targets"].vocabulary.vocab_size
  examples = list(task.get_dataset(LENGTHS, split="train", shuffle=False)
                  .take(5).as_numpy_iterator())
  assert len(examples) == 5
  for ex in examples:
    assert len(ex["inputs"]) == 32 and ex["inputs"][-1] == 1
    assert ex["targets"][0] == vocab_size - 1  # <extra_id_0> opens the targets
    assert ex["targets"][-1] == 1


def test_train_sizes(tiny_corpus, names):
  assert local.train_size("translate_en_ro", "examples", tiny_corpus.root) == 40
  rows = tiny_corpus.pair_file("ro", "train").read_text().splitlines()
  assert local.train_size("translate_en_ro", "characters", tiny_corpus.root) == (
      sum(len(r.split("\t")[1]) for r in rows))
  text = tiny_corpus.mono_file("en", "train").read_text().splitlines()
  assert local.train_size("span_corruption_en", "characters",
                          tiny_corpus.root) == sum(map(len, text))
  with pytest.raises(UserError, match="available: span_corruption_en"):
    local.train_size("translate_en_de", "examples", tiny_corpus.root)
  with pytest.raises(UserError, match="unknown size unit"):
    local.train_size("translate_en_ro", "tokens", tiny_corpus.root)


def test_count_lines_like_text_line_dataset(tmp_path):
  path = tmp_path / "x.txt"
  for text, n in (("", 0), ("a", 1), ("a\n", 1), ("a\nb", 2), ("a\n\nb\n", 3)):
    path.write_text(text)
    assert local.count_lines(path) == n


def test_missing_corpus_says_how_to_build_it(tmp_path, monkeypatch):
  with pytest.raises(UserError, match="run `ptjf corpus build`"):
    local.register_local_tasks(tmp_path / "nowhere")
  monkeypatch.setenv(layout.CORPUS_DIR_ENV, str(tmp_path / "env_corpus"))
  with pytest.raises(UserError, match="env_corpus"):
    local.register_local_tasks()


@pytest.fixture(scope="module")
def numbered_corpus(tmp_path_factory) -> layout.CorpusLayout:
  """One pair, en-xx, whose 5,000 training lines are in file order 0..4999 (as the old sorted
  files were): a line's target is its index."""
  import sentencepiece as spm
  corpus = layout.CorpusLayout(tmp_path_factory.mktemp("numbered"))
  for split, n in (("train", 5000), ("validation", 10)):
    path = corpus.pair_file("xx", split)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"line {i}\t{i}\n" for i in range(n)))
  corpus.vocab_model.parent.mkdir(parents=True, exist_ok=True)
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter([f"line {i} {i}" for i in range(5000)]),
      model_prefix=str(corpus.vocab_model.with_suffix("")), vocab_size=60,
      user_defined_symbols=["<2xx>"], hard_vocab_limit=False,
      pad_id=0, eos_id=1, unk_id=2, bos_id=-1, minloglevel=2)
  return corpus


def _first_draws(task: str, seed: int, n: int, via_engine: bool) -> list[int]:
  """The line indices of a task's first `n` training examples, read as T5X reads a SeqIO
  task (the registry's get_dataset) or as the local engine does (engine.data.task_stream)."""
  from ptjf.engine import data
  vocab = seqio.get_mixture_or_task(task).output_features["targets"].vocabulary
  if via_engine:
    stream = data.task_stream(task, "train", LENGTHS, seed)
    targets = (ex["decoder_target_tokens"] for ex in stream)
  else:
    ds = seqio.get_mixture_or_task(task).get_dataset(LENGTHS, split="train", shuffle=True,
                                                     seed=seed, num_epochs=None)
    targets = (ex["targets"] for ex in ds.as_numpy_iterator())
  return [int(vocab.decode([int(t) for t in ids if t > 1]))
          for ids, _ in zip(targets, range(n))]


@pytest.mark.parametrize("via_engine", [False, True])
def test_training_stream_draws_over_the_whole_split(numbered_corpus, via_engine):
  local.register_local_tasks(numbered_corpus.root)
  draws = _first_draws("translate_en_xx", seed=0, n=2000, via_engine=via_engine)
  tenths = np.bincount(np.array(draws) // 500, minlength=10)
  # Uniform draws put 200 +- 13 (one standard deviation) in each tenth; SeqIO's default
  # 1,000-example buffer put all 2,000 in the first 3,000 lines.
  assert tenths.min() > 140 and tenths.max() < 260, tenths
  other = _first_draws("translate_en_xx", seed=1, n=100, via_engine=via_engine)
  assert len(set(draws[:100]) & set(other)) < 20  # another DATA_SEED reads other lines


def test_chinese_bleu_uses_sacrebleu_s_chinese_tokenizer(tiny_corpus, tmp_path):
  # The local engine and T5X both score with the task's metric fns.
  corpus = write_synthetic_corpus(tmp_path, {"zh_CN": 3})
  try:
    assert "translate_en_zh_cn" in local.register_local_tasks(corpus.root)
    (bleu,) = seqio.get_mixture_or_task("translate_en_zh_cn").metric_fns
  finally:   # span_corruption_en is the tiny corpus's again
    local.register_local_tasks(tiny_corpus.root)
  target, prediction = ["我爱你们的家"], ["我爱你们的猫"]
  assert bleu(target, prediction) == outputs.bleu(target, prediction, tokenize="zh")
  assert outputs.bleu(target, prediction)["bleu"] == 0.0 < bleu(target, prediction)["bleu"]
