"""The corpus's shared SentencePiece vocabulary, trained on a temperature draw.

Why a temperature draw: training the vocabulary on raw text would give the
high-resource language nearly all pieces. Languages are drawn with
probability proportional to P_i^(1/tau) (P_i = share of training sentences),
tau = 3.33 as in the paper's baselines.

>>> temperature_weights({"fr": 900, "ro": 100}, tau=1.0)
{'fr': 0.9, 'ro': 0.1}
"""
import pathlib
import random

from ptjf.errors import UserError
from ptjf.tasks import sampling, preprocessors

TAU = 3.33
MIN_VOCAB_SIZE = 300  # 256 byte-fallback pieces + ids + some characters
DEFAULT_DRAW = 200_000


def temperature_weights(sizes: dict[str, int], tau: float = TAU) -> dict[str, float]:
  """`sampling.temperature_rates` of the languages that have sentences, rounded to 12 digits."""
  rates = sampling.temperature_rates({k: n for k, n in sizes.items() if n}, tau)
  return {k: round(v, 12) for k, v in rates.items()}


def temperature_draw(texts: dict[str, list[str]], draw_size: int, seed: int,
                     tau: float = TAU) -> list[str]:
  """`draw_size` sentences (with replacement) drawn per language by weight."""
  rng = random.Random(seed)
  weights = temperature_weights({k: len(v) for k, v in texts.items()}, tau)
  out = []
  for lang in sorted(weights):
    out += rng.choices(texts[lang], k=max(1, round(draw_size * weights[lang])))
  rng.shuffle(out)
  return out


def train_vocab(texts: dict[str, list[str]], model_path: pathlib.Path,
                vocab_size: int = 8000, seed: int = 0,
                draw_size: int = DEFAULT_DRAW) -> None:
  """Trains the unigram model at `model_path` (ids: pad 0, eos 1, unk 2, no bos).

  Each non-English language's target tag ("<2ro>") is one piece of the vocabulary.
  """
  import io
  import sentencepiece as spm
  if vocab_size < MIN_VOCAB_SIZE:
    raise UserError(f"vocab size {vocab_size} is too small: use "
                    f"--vocab-size {MIN_VOCAB_SIZE} or more")
  sentences = temperature_draw(texts, draw_size, seed)
  # Written via a buffer: a model_prefix would be stored in the model, making
  # its bytes (and the corpus hash) depend on the output directory.
  buffer = io.BytesIO()
  try:
    _train(spm, sentences, buffer, vocab_size,
           [preprocessors.target_tag(lang) for lang in sorted(texts) if lang != "en"])
  except RuntimeError as e:
    if "smaller than required_chars" not in str(e):
      raise
    raise UserError(f"vocab size {vocab_size} is smaller than the corpus's "
                    f"characters + 256 bytes ({str(e).split('. ')[-2]}): raise "
                    "--vocab-size") from None
  model_path.parent.mkdir(parents=True, exist_ok=True)
  model_path.write_bytes(buffer.getvalue())


def _train(spm, sentences: list[str], buffer, vocab_size: int, symbols: list[str]) -> None:
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(sentences), model_writer=buffer,
      vocab_size=vocab_size, user_defined_symbols=symbols,
      model_type="unigram", character_coverage=0.9995, byte_fallback=True,
      hard_vocab_limit=False, pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
      num_threads=1, seed_sentencepiece_size=200_000,
      input_sentence_size=0, shuffle_input_sentence=False, minloglevel=2)
