"""Gin mixture functions, and the rates a mixture really samples at."""
import collections
import pathlib
import shutil

import gin
import pytest
import seqio
import tensorflow as tf

from ptjf import gin_files
from ptjf.errors import UserError
from ptjf.tasks import mixtures

LENGTHS = {"inputs": 32, "targets": 32}
TASKS = ["translate_en_fr", "translate_en_ro"]  # 400 and 40 training pairs
DRAWS = 20_000


def _keys(ds):
  """Each example's targets ids as one string, computed in batches (fast)."""
  keys = ds.map(lambda ex: tf.strings.reduce_join(
      tf.strings.as_string(ex["targets"]), separator=","))
  return [k for batch in keys.batch(1000).as_numpy_iterator() for k in batch]


@pytest.fixture(scope="module")
def source_of(tiny_corpus):
  """targets ids -> the task they come from, over both tasks' train splits."""
  mixtures.local_task(TASKS[0], corpus_dir=tiny_corpus.root)
  table = {}
  for task in TASKS:
    for key in _keys(seqio.get_mixture_or_task(task).get_dataset(
        LENGTHS, split="train", shuffle=False, num_epochs=1)):
      assert table.setdefault(key, task) == task
  return table


def _empirical_rates(name, source_of, seed):
  ds = seqio.get_mixture_or_task(name).get_dataset(
      LENGTHS, split="train", shuffle=True, seed=seed)
  counts = collections.Counter(source_of[k] for k in _keys(ds.take(DRAWS)))
  return {task: counts[task] / DRAWS for task in TASKS}


def test_rate_mixture_samples_at_its_rates(tiny_corpus, source_of):
  name = mixtures.rate_mixture(TASKS, [0.7, 0.3], corpus_dir=tiny_corpus.root)
  assert name == "mix_translate_en_fr_0.7_translate_en_ro_0.3"
  assert mixtures.mixture_rates(name) == pytest.approx(
      {"translate_en_fr": 0.7, "translate_en_ro": 0.3})
  assert _empirical_rates(name, source_of, seed=1) == pytest.approx(
      {"translate_en_fr": 0.7, "translate_en_ro": 0.3}, abs=0.01)


def test_temperature_mixture_samples_at_hand_computed_rates(tiny_corpus,
                                                            source_of):
  # tau = 2: sqrt(400) = 20, sqrt(40) = 6.3246; 20 / 26.3246 = 0.7597.
  name = mixtures.temperature_mixture(TASKS, 2, corpus_dir=tiny_corpus.root)
  assert name == "mix_translate_en_fr_0.759747_translate_en_ro_0.240253"
  assert mixtures.mixture_rates(name) == pytest.approx(
      {"translate_en_fr": 0.759747, "translate_en_ro": 0.240253}, abs=1e-6)
  assert _empirical_rates(name, source_of, seed=2) == pytest.approx(
      {"translate_en_fr": 0.759747, "translate_en_ro": 0.240253}, abs=0.01)


def test_unimax_mixture_hand_computed(tiny_corpus):
  # Budget 200 examples: ro (40) gets min(100, 40) = 40, fr min(160, 400) = 160.
  name = mixtures.unimax_mixture(TASKS, budget=200, corpus_dir=tiny_corpus.root)
  assert mixtures.mixture_rates(name) == pytest.approx(
      {"translate_en_fr": 0.8, "translate_en_ro": 0.2})
  # Two epochs allowed: ro gets min(100, 80) = 80, fr 120.
  name = mixtures.unimax_mixture(TASKS, budget=200, max_epochs=2,
                                 corpus_dir=tiny_corpus.root)
  assert mixtures.mixture_rates(name) == pytest.approx(
      {"translate_en_fr": 0.6, "translate_en_ro": 0.4})
  with pytest.raises(UserError, match="lower the budget"):
    mixtures.unimax_mixture(TASKS, budget=441, corpus_dir=tiny_corpus.root)
  sizes = mixtures.train_sizes(TASKS, "characters", tiny_corpus.root)
  name = mixtures.unimax_mixture(TASKS, budget=sum(sizes.values()),
                                 unit="characters", corpus_dir=tiny_corpus.root)
  total = sum(sizes.values())
  assert mixtures.mixture_rates(name) == pytest.approx(
      {t: s / total for t, s in sizes.items()})


def test_gin_line_registers_and_returns_the_name(tiny_corpus):
  @gin.configurable
  def ptjf_test_consumer(mixture_or_task_name=gin.REQUIRED):
    return mixture_or_task_name

  with gin.unlock_config():
    gin.parse_config(f"""
      MIXTURE_OR_TASK_NAME = @ptjf_mixture/rate_mixture()
      ptjf_mixture/rate_mixture.tasks = {TASKS}
      ptjf_mixture/rate_mixture.rates = [1, 1]
      ptjf_mixture/rate_mixture.corpus_dir = "{tiny_corpus.root}"
      ptjf_test_consumer.mixture_or_task_name = %MIXTURE_OR_TASK_NAME
    """)
  try:
    name = ptjf_test_consumer()
  finally:
    gin.clear_config()
  assert name == "mix_translate_en_fr_0.5_translate_en_ro_0.5"
  assert seqio.get_mixture_or_task(name).get_rate(
      seqio.get_mixture_or_task("translate_en_ro")) == 0.5


@pytest.mark.parametrize("mixture", ["@temperature_mixture()", "@unimax_mixture()"])
def test_every_mixture_reads_corpus_dir_from_the_local_gin(tiny_corpus, tmp_path, monkeypatch,
                                                           mixture):
  monkeypatch.setenv("PTJF_CORPUS_DIR", str(tmp_path / "no_corpus"))
  base = gin_files.gin_dir() / "local" / "base.gin"
  with gin.unlock_config():
    gin.parse_config_files_and_bindings([str(base)], [
        f"CORPUS_DIR = '{tiny_corpus.root}'", f"MIXTURE_OR_TASK_NAME = {mixture}",
        f"temperature_mixture.tasks = {TASKS}", "temperature_mixture.tau = 2",
        f"unimax_mixture.tasks = {TASKS}", "unimax_mixture.budget = 100"],
        skip_unknown=True, finalize_config=False)
  try:
    name = gin.query_parameter("MIXTURE_OR_TASK_NAME/macro.value").scoped_configurable_fn()
  finally:
    gin.clear_config()
  assert set(mixtures.mixture_rates(name)) == set(TASKS)


def test_a_task_with_no_training_examples_is_refused(tiny_corpus, tmp_path):
  root = tmp_path / "corpus"
  shutil.copytree(tiny_corpus.root, root)
  (root / "pairs" / "en-ro" / "train.tsv").write_text("")
  with pytest.raises(UserError, match="task 'translate_en_ro' has no training examples"):
    mixtures.rate_mixture(TASKS, [0.7, 0.3], corpus_dir=root)
  mixtures.local_task(TASKS[0], tiny_corpus.root)  # the registry back on the shared corpus


def test_single_task_and_mixture_rates(tiny_corpus):
  assert mixtures.local_task("span_corruption_en",
                             corpus_dir=tiny_corpus.root) == "span_corruption_en"
  assert mixtures.mixture_rates("span_corruption_en") == {
      "span_corruption_en": 1.0}
  name = mixtures.rate_mixture(TASKS, {"translate_en_ro": 1,
                                       "translate_en_fr": 3},
                               corpus_dir=tiny_corpus.root, name="my_mix")
  assert name == "my_mix"
  assert mixtures.mixture_rates(name) == {"translate_en_fr": 0.75,
                                          "translate_en_ro": 0.25}


@pytest.mark.parametrize("call, message", [
    (lambda d: mixtures.local_task("translate_en_de", d),
     "unknown task 'translate_en_de': available: span_corruption_en"),
    (lambda d: mixtures.rate_mixture(TASKS, [1], d), "2 tasks but 1 rates"),
    (lambda d: mixtures.rate_mixture(TASKS, [1, 0], d), "rate 0 of task"),
    (lambda d: mixtures.rate_mixture(TASKS * 2, [1] * 4, d), "listed twice"),
    (lambda d: mixtures.rate_mixture([], [], d), "no tasks"),
    (lambda d: mixtures.temperature_mixture(TASKS, 0, d), "temperature 0"),
    (lambda d: mixtures.unimax_mixture(TASKS, 10, unit="bytes", corpus_dir=d),
     "unknown size unit"),
    (lambda d: mixtures.mixture_rates("no_such_mixture"), "no task or mixture"),
    (lambda d: mixtures.local_task("translate_en_fr", d / "missing"),
     "run `ptjf corpus build`"),
])
def test_bad_input_is_a_one_line_user_error(tiny_corpus, call, message):
  with pytest.raises(UserError, match=message) as e:
    call(tiny_corpus.root)
  # gin appends "\n  In call to configurable ..."; the problem is line one.
  assert message.split("(")[0] in str(e.value).splitlines()[0]
