"""The shared SentencePiece vocabulary."""
import pytest

from ptjf.tasks import vocab


def test_temperature_weights_flatten_sizes():
  w = vocab.temperature_weights({"fr": 900, "ro": 100}, tau=3.33)
  assert w["fr"] + w["ro"] == pytest.approx(1.0)
  assert 0.1 < w["ro"] < 0.5 and w["fr"] > w["ro"]


def test_vocab_ids_and_seqio_round_trip(tmp_path):
  import seqio
  texts = {"en": [f"the cat number {i} sleeps" for i in range(50)],
           "fr": [f"le chat numéro {i} dort" for i in range(50)]}
  path = tmp_path / "a" / "spm.model"
  vocab.train_vocab(texts, path, vocab_size=400, draw_size=500)
  again = tmp_path / "b" / "spm.model"
  vocab.train_vocab(texts, again, vocab_size=400, draw_size=500)
  assert path.read_bytes() == again.read_bytes()
  v = seqio.SentencePieceVocabulary(str(path))
  assert (v.pad_id, v.eos_id, v.unk_id) == (0, 1, 2)
  ids = v.encode("le chat numéro 7 dort ☃")
  assert v.decode(ids) == "le chat numéro 7 dort ☃"  # byte fallback
