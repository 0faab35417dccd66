"""Cluster (TFDS) tasks, read from tiny datasets written in TFDS's own format."""
import pytest
import seqio
import tensorflow_datasets as tfds

from ptjf.errors import UserError
from ptjf.tasks import cluster
import synthetic_corpus

LENGTHS = {"inputs": 32, "targets": 32}
C4_FEATURES = ("text", "url", "content-type", "content-length", "timestamp")
PAIRS = synthetic_corpus.synthetic_pairs("ro", 9, seed=1)


def _write_tfds(data_dir, name, config, version, features, splits):
  """Prepares `name/config:version` under data_dir with the given split rows."""
  with tfds.core.registered.skip_registration():
    class Tiny(tfds.core.GeneratorBasedBuilder):
      VERSION = tfds.core.Version(version)
      BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=config)]

      def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=features)

      def _split_generators(self, dl_manager):
        return {split: self._generate_examples(rows)
                for split, rows in splits.items()}

      def _generate_examples(self, rows):
        yield from enumerate(rows)
  Tiny.name = name
  # A dotted module makes TFDS look up the builder's code with
  # importlib_resources, which this stack does not install.
  Tiny.__module__ = "tiny_tfds_builder"
  Tiny(config=config, data_dir=str(data_dir)).download_and_prepare()


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
  """wmt16_translate/ro-en:1.0.0 and c4/multilingual:3.1.0 (sw) in TFDS layout."""
  data_dir = tmp_path_factory.mktemp("tfds")
  tfds.disable_progress_bar()
  pairs = [{"en": en, "ro": ro} for en, ro in PAIRS]
  _write_tfds(data_dir, "wmt16_translate", "ro-en", "1.0.0",
              tfds.features.Translation(languages=("ro", "en")),
              {"train": pairs[:6], "validation": pairs[6:8], "test": pairs[8:]})
  doc = lambda text: dict({k: "x" for k in C4_FEATURES}, text=text)
  _write_tfds(data_dir, "c4", "multilingual", "3.1.0",
              tfds.features.FeaturesDict(
                  {k: tfds.features.Text() for k in C4_FEATURES}),
              {"sw": [doc("the small red house near the old tree " * 4)] * 5,
               "sw-validation": [doc("a green bird")]})
  return data_dir


def test_names():
  assert cluster.cluster_task_names() == [
      "mc4_span_corruption_en", "mc4_span_corruption_gd",
      "mc4_span_corruption_gu", "mc4_span_corruption_hi",
      "mc4_span_corruption_sw", "wmt14_translate_en_hi",
      "wmt15_translate_en_fr", "wmt16_translate_en_ro",
      "wmt19_translate_en_zh"]


def test_registration_reads_nothing(tmp_path):
  missing = str(tmp_path / "missing")
  for name in cluster.cluster_task_names():
    cluster.register_cluster_task(name, vocab_path=missing + "/spm.model",
                                  data_dir=missing)
  assert seqio.get_mixture_or_task("wmt19_translate_en_zh").splits == (
      "train", "validation")
  assert seqio.get_mixture_or_task("mc4_span_corruption_gd").splits == (
      "train", "validation")
  cluster.register_cluster_task("mc4_span_corruption_hi", mc4_version="3.0.1")
  task = seqio.get_mixture_or_task("mc4_span_corruption_hi")
  vocab = task.output_features["targets"].vocabulary
  assert vocab.sentencepiece_model_file == cluster.MC4_VOCAB
  assert task.source.tfds_dataset.name == "c4/multilingual:3.0.1"


def test_bad_names_and_missing_vocab():
  with pytest.raises(UserError, match="needs a SentencePiece model"):
    cluster.register_cluster_task("wmt15_translate_en_fr")
  with pytest.raises(UserError, match="available: mc4_span_corruption_en"):
    cluster.register_cluster_task("mc4_span_corruption_xx")


def test_wmt_task_reads_tfds(tfds_dir, tiny_corpus):
  name = cluster.register_cluster_task(
      "wmt16_translate_en_ro", vocab_path=str(tiny_corpus.vocab_model),
      data_dir=str(tfds_dir))
  task = seqio.get_mixture_or_task(name)
  assert task.num_input_examples("train") == 6
  assert seqio.mixing_rate_num_examples(task) == 6
  vocab = task.output_features["targets"].vocabulary
  examples = list(task.get_dataset(LENGTHS, split="validation", shuffle=False)
                  .as_numpy_iterator())
  decoded = sorted((vocab.decode(ex["inputs"].tolist()),
                    vocab.decode(ex["targets"].tolist())) for ex in examples)
  assert decoded == sorted((f"<2ro> {en}", ro) for en, ro in PAIRS[6:8])
  assert all(ex["inputs"][-1] == 1 for ex in examples)


def test_mc4_task_reads_tfds(tfds_dir, tiny_corpus):
  name = cluster.register_cluster_task(
      "mc4_span_corruption_sw", vocab_path=str(tiny_corpus.vocab_model),
      data_dir=str(tfds_dir))
  task = seqio.get_mixture_or_task(name)
  assert task.num_input_examples("train") == 5
  vocab_size = task.output_features["targets"].vocabulary.vocab_size
  examples = list(task.get_dataset(LENGTHS, split="train", shuffle=False)
                  .as_numpy_iterator())
  assert examples and all(ex["targets"][0] == vocab_size - 1 for ex in examples)
  assert len(examples[0]["inputs"]) == 32
