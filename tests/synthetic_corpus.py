"""A tiny synthetic corpus in the real corpus layout, for tests.

Rule-based "languages" (a fixed word map per language, word order reversed),
so a tiny model learns them in a few hundred steps.
"""
import pathlib
import random

from ptjf.tasks import layout, preprocessors

_EN_WORDS = ("the cat dog bird sees eats likes a small big red green house tree "
             "runs sleeps on under near water food old new happy").split()


def _word_map(lang: str) -> dict[str, str]:
  """A fixed, invertible word map: English word -> pseudo-language word."""
  rng = random.Random(lang)
  out = {}
  for w in _EN_WORDS:
    letters = list(w)
    rng.shuffle(letters)
    out[w] = "".join(letters) + lang[:2]
  return out


def synthetic_pairs(lang: str, n: int, seed: int) -> list[tuple[str, str]]:
  """`n` distinct (english, translation) pairs of a rule-based language."""
  rng = random.Random(seed)
  wmap = _word_map(lang)
  pairs, seen = [], set()
  while len(pairs) < n:
    sentence = " ".join(rng.choice(_EN_WORDS) for _ in range(rng.randint(3, 8)))
    if sentence in seen:
      continue
    seen.add(sentence)
    translated = " ".join(wmap[w] for w in reversed(sentence.split()))
    pairs.append((sentence.capitalize() + ".", translated + "."))
  return pairs


def write_synthetic_corpus(root: pathlib.Path, sizes: dict[str, int],
                           vocab_size: int = 200) -> layout.CorpusLayout:
  """Writes pairs, mono text and a vocabulary under `root`; returns the layout."""
  import sentencepiece as spm
  corpus = layout.CorpusLayout(root)
  all_text = []
  for i, (lang, n) in enumerate(sorted(sizes.items())):
    pairs = synthetic_pairs(lang, n + 40, seed=i)
    splits = {"validation": pairs[:20], "test": pairs[20:40], "train": pairs[40:]}
    for split, rows in splits.items():
      for path, lines in (
          (corpus.pair_file(lang, split), [f"{s}\t{t}" for s, t in rows]),
          (corpus.mono_file(lang, split), [t for _, t in rows])):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
      if split == "train":
        all_text += [s for s, _ in rows] + [t for _, t in rows]
    en_rows = [s for s, _ in splits["train"]]
  for split in layout.SPLITS:
    path = corpus.mono_file("en", split)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(en_rows[:50] if split != "train" else en_rows)
                    + "\n", encoding="utf-8")
  corpus.vocab_model.parent.mkdir(parents=True, exist_ok=True)
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(all_text), model_prefix=str(corpus.vocab_model.with_suffix("")),
      vocab_size=vocab_size, model_type="unigram", character_coverage=1.0,
      user_defined_symbols=[preprocessors.target_tag(lang) for lang in sorted(sizes)],
      hard_vocab_limit=False, pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
      minloglevel=2)
  return corpus
