"""Builds the offline corpus: gettext pairs -> splits -> files, vocab, manifest.

Split rule (grouped by English source, so no held-out English sentence is
ever trained on, in any language, pairs or mono):
  1. "Shared" held-out sets: languages with at least
     `SHARED_MIN_FACTOR * (validation_size + test_size)` pairs are eligible;
     the English sources common to all eligible languages are shuffled
     (seeded) and the first V become validation, the next T test, with
     V, T capped at 10% of the smallest eligible language's pairs (so
     held-out never exceeds 20% of a language).
  2. Every other language also gets its own held-out sources: up to 10% of its
     pairs each for validation and test (at most V / T).
  3. Training = every pair whose English source is in no held-out set.
With `--subsample ro=0.01` the train split of en-ro keeps a seeded sample of
1% of the biggest pair's train size. Mono text of a language is its targets
per split; English mono is the English side (train: union over pairs).
Train files are written in a seeded random order (`train_order`), held-out
files sorted: a reader that takes a train file's first lines, or shuffles it
with a small buffer, still sees typical examples.

>>> parse_subsample("ro=0.01,hi=0.008")
{'hi': 0.008, 'ro': 0.01}
"""
import difflib
import hashlib
import json
import pathlib
import random
import shutil
import time
from collections import Counter, defaultdict

from ptjf import locks
from ptjf.errors import UserError
from ptjf.tasks import catalogs
from ptjf.tasks import layout as layout_lib
from ptjf.tasks import vocab as vocab_lib

DEFAULT_LANGS = ("fr", "zh_CN", "ro", "hi", "gu", "gd", "sw")
DEFAULT_LOCALE_DIR = pathlib.Path("/usr/share/locale")
SHARED_MIN_FACTOR = 5
HELD_OUT_CAP = 0.1
SOURCE = layout_lib.SOURCE_LANG


def parse_subsample(spec: str | dict | None) -> dict[str, float]:
  """'ro=0.01,hi=0.008' -> {lang: fraction}; UserError if malformed."""
  if not spec:
    return {}
  if isinstance(spec, dict):
    items = spec.items()
  else:
    try:
      items = [part.split("=") for part in spec.split(",") if part.strip()]
      items = [(k.strip(), float(v)) for k, v in items]
    except ValueError:
      raise UserError(f"bad subsample spec {spec!r}: write it like "
                      "--subsample ro=0.01,hi=0.008") from None
  out = {}
  for lang, frac in items:
    if not 0 < float(frac) <= 1:
      raise UserError(f"bad subsample fraction {lang}={frac}: use a number in "
                      "(0, 1], e.g. --subsample ro=0.01")
    out[lang] = float(frac)
  return dict(sorted(out.items()))


def dedup(pairs: list[tuple[str, str]]) -> dict[str, str]:
  """One translation per English source: the most frequent, ties -> smallest."""
  by_source = defaultdict(Counter)
  for s, t in pairs:
    by_source[s][t] += 1
  return {s: min(c.items(), key=lambda kv: (-kv[1], kv[0]))[0]
          for s, c in sorted(by_source.items())}


def split_sources(pairs: dict[str, dict[str, str]], validation_size: int,
                  test_size: int, seed: int) -> tuple[dict, dict, list[str]]:
  """Held-out English sources per language: ({lang: set}, {lang: set}, eligible)."""
  rng = random.Random(seed)
  eligible = sorted(l for l, p in pairs.items()
                    if len(p) >= SHARED_MIN_FACTOR * (validation_size + test_size))
  val, test = {}, {}
  v = t = 0
  if eligible:
    smallest = min(len(pairs[l]) for l in eligible)
    v = min(validation_size, int(HELD_OUT_CAP * smallest))
    t = min(test_size, int(HELD_OUT_CAP * smallest))
    common = sorted(set.intersection(*(set(pairs[l]) for l in eligible)))
    rng.shuffle(common)
    shared_val, shared_test = set(common[:v]), set(common[v:v + t])
  else:
    shared_val, shared_test = set(), set()
  held = shared_val | shared_test
  for lang in sorted(pairs):
    sources = set(pairs[lang])
    val[lang] = shared_val & sources
    test[lang] = shared_test & sources
    if lang not in eligible:
      own = sorted(sources - held)
      rng.shuffle(own)
      n_v = min(validation_size, int(HELD_OUT_CAP * len(sources)))
      n_t = min(test_size, int(HELD_OUT_CAP * len(sources)))
      val[lang] |= set(own[:n_v])
      test[lang] |= set(own[n_v:n_v + n_t])
      held |= val[lang] | test[lang]
  return val, test, eligible


def train_order(rows: list, seed: int, name: str) -> list:
  """`rows` in the seeded random order of train file `name` (sorted first, so
  the order depends only on the set of rows, the seed and the name).

  >>> train_order(["c", "a", "b"], 0, "en-fr") == train_order(["b", "c", "a"], 0, "en-fr")
  True
  >>> sorted(train_order(["c", "a", "b"], 0, "en-fr"))
  ['a', 'b', 'c']
  """
  rows = sorted(rows)
  random.Random(f"{seed}:train-order:{name}").shuffle(rows)
  return rows


def _sha256(path: pathlib.Path) -> str:
  return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_lines(path: pathlib.Path, lines: list[str]) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text("".join(l + "\n" for l in lines), encoding="utf-8")


def _tsv_field(text: str) -> str:
  return " ".join(text.replace("\t", " ").split())


def _hash_outputs(root: pathlib.Path, outputs: dict) -> str:
  digest = hashlib.sha256()
  for rel in sorted(outputs):
    digest.update(f"{rel}\t{outputs[rel]['sha256']}\n".encode())
  return digest.hexdigest()


def read_manifest(path: pathlib.Path) -> dict:
  """A corpus manifest; UserError if it is missing or not whole JSON."""
  if not path.is_file():
    raise UserError(f"no corpus manifest at {path}: run "
                    f"`ptjf corpus build --out {path.parent}`")
  try:
    manifest = json.loads(path.read_text())
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise UserError(f"corpus manifest {path} is damaged ({e}): rebuild with "
                    f"`ptjf corpus build --out {path.parent} --force`") from None
  if not isinstance(manifest, dict) or "corpus_hash" not in manifest:
    raise UserError(f"corpus manifest {path} has no corpus_hash: rebuild with "
                    f"`ptjf corpus build --out {path.parent} --force`")
  return manifest


def corpus_hash(corpus_dir: pathlib.Path | str | None = None) -> str:
  """The corpus hash recorded in the manifest of a built corpus."""
  corpus = layout_lib.CorpusLayout(pathlib.Path(
      corpus_dir or layout_lib.default_corpus_dir()))
  return read_manifest(corpus.manifest)["corpus_hash"]


def _read_all(locale_dir: pathlib.Path, langs: list[str]):
  if not locale_dir.is_dir():
    raise UserError(f"locale dir {locale_dir} does not exist: pass "
                    "--locale-dir with a folder holding <lang>/LC_MESSAGES/*.mo")
  result = {}
  for lang in langs:
    cats = catalogs.read_language(locale_dir, lang)
    if not catalogs.catalog_files(locale_dir, lang):
      known = catalogs.available_langs(locale_dir)
      near = ([k for k in known if k.split("_")[0] == lang.split("_")[0]]
              or difflib.get_close_matches(lang, known, n=8, cutoff=0.5))
      hint = (f"the nearest codes there are {', '.join(near)}" if near else
              f"no code there is near it ({len(known)} have catalogs)")
      raise UserError(f"no catalogs for language {lang!r} in {locale_dir}: "
                      f"{hint}; pass --langs with one of them")
    result[lang] = cats
  return result


def builder_hash() -> str:
  """Hash of the builder's code, so a changed cleaning rule forces a rebuild."""
  digest = hashlib.sha256()
  for module in (catalogs, vocab_lib):
    digest.update(pathlib.Path(module.__file__).read_bytes())
  digest.update(pathlib.Path(__file__).read_bytes())
  return digest.hexdigest()


def _catalog_hashes(locale_dir: pathlib.Path, langs: list[str]) -> dict[str, str]:
  return {str(p): _sha256(p) for lang in langs
          for p in catalogs.catalog_files(locale_dir, lang)}


def _up_to_date(corpus, options: dict, hashes: dict[str, str]) -> dict | None:
  try:
    manifest = read_manifest(corpus.manifest)
  except UserError:
    return None
  if manifest.get("options") != options:
    return None
  if {c["path"]: c["sha256"] for c in manifest["catalogs"]} != hashes:
    return None
  if not all((corpus.root / rel).is_file() for rel in manifest["outputs"]):
    return None
  return manifest


def _building_dir(root: pathlib.Path) -> pathlib.Path:
  """Where a build writes before `_move_into_place`: a failed or killed build
  leaves no half-written corpus without a manifest (only this, cleared on the
  next build)."""
  building = root.parent / f".{root.name}.building"
  shutil.rmtree(building, ignore_errors=True)
  return building


def _move_into_place(building: pathlib.Path, root: pathlib.Path) -> None:
  """Replaces root's corpus folders with a finished build's, manifest last
  (the old manifest goes first): other files in root are left alone."""
  root.mkdir(parents=True, exist_ok=True)
  (root / layout_lib.CorpusLayout(root).manifest.name).unlink(missing_ok=True)
  for entry in sorted(building.iterdir(), key=lambda p: p.suffix == ".json"):
    target = root / entry.name
    if target.is_dir():
      shutil.rmtree(target)
    entry.replace(target)
  building.rmdir()


def _refuse_in_use(root: pathlib.Path, users: list[str]) -> None:
  raise UserError(f"corpus {root} is in use by {'; '.join(users) or 'another process'}: build "
                  "into another folder (ptjf corpus build --out, ptjf demo --corpus-dir), or "
                  "wait until they finish")


def build_corpus(out_dir: pathlib.Path | str | None = None,
                 langs=DEFAULT_LANGS, locale_dir=DEFAULT_LOCALE_DIR,
                 subsample=None, vocab_size: int = 8000,
                 validation_size: int = 200, test_size: int = 200,
                 seed: int = 0, force: bool = False,
                 vocab_draw: int = vocab_lib.DEFAULT_DRAW,
                 log=print) -> dict:
  """Builds (or reuses) the corpus at `out_dir`; returns the manifest dict.

  A corpus is never changed under a run: while anything reads it (a sweep, a trainer, any
  process that registered its tasks: `locks`), a build that would change it is refused with
  one line naming them; an up-to-date corpus is reused all the same. Building side by side
  (a new version per build) would leave the old runs' corpus in place but make a path mean
  different data over time; a refusal keeps one path, one corpus, and says the fix: another
  --out, or wait.
  """
  corpus = layout_lib.CorpusLayout(pathlib.Path(
      out_dir or layout_lib.default_corpus_dir()))
  locale_dir = pathlib.Path(locale_dir)
  langs = sorted(dict.fromkeys(l for l in langs if l != SOURCE))
  fractions = parse_subsample(subsample)
  unknown = sorted(set(fractions) - set(langs))
  if unknown:
    raise UserError(f"subsample names languages not built: {unknown}: "
                    f"use some of {langs}")
  if vocab_size < vocab_lib.MIN_VOCAB_SIZE:
    raise UserError(f"vocab size {vocab_size} is too small: use "
                    f"--vocab-size {vocab_lib.MIN_VOCAB_SIZE} or more")
  options = {"langs": langs, "subsample": fractions, "vocab_size": vocab_size,
             "validation_size": validation_size, "test_size": test_size,
             "seed": seed, "vocab_draw": vocab_draw,
             "locale_dir": str(locale_dir), "builder": builder_hash()}
  started = time.time()
  read = _read_all(locale_dir, langs)
  if not force:
    manifest = _up_to_date(corpus, options, _catalog_hashes(locale_dir, langs))
    if manifest:
      log(f"corpus up to date at {corpus.root} (use --force to rebuild)")
      log(format_counts(manifest))
      log(f"corpus hash: {manifest['corpus_hash']}")
      return manifest

  pairs = {lang: dedup([p for c in cats for p in c.pairs])
           for lang, cats in read.items()}
  empty = [lang for lang, table in pairs.items() if not table]
  if empty:
    raise UserError(f"the catalogs of {', '.join(empty)} in {locale_dir} give "
                    "0 translated pairs: leave it out of --langs")
  with locks.exclusive(corpus.root, lambda users: _refuse_in_use(corpus.root, users),
                       who="ptjf corpus build"):
    if corpus.manifest.is_file():
      log(f"rebuilding the corpus at {corpus.root} ("
          f"{'--force' if force else 'its catalogs, options or files changed'})")
    final, corpus = corpus, layout_lib.CorpusLayout(_building_dir(corpus.root))
    val, test, eligible = split_sources(pairs, validation_size, test_size, seed)
    held = set().union(*val.values(), *test.values()) if pairs else set()
    splits = {}
    for lang, table in pairs.items():
      splits[lang] = {
          "train": [(s, t) for s, t in table.items() if s not in held],
          "validation": [(s, table[s]) for s in sorted(val[lang])],
          "test": [(s, table[s]) for s in sorted(test[lang])]}
    biggest = max((len(s["train"]) for s in splits.values()), default=0)
    for lang, frac in fractions.items():
      rows = splits[lang]["train"]
      n = min(len(rows), max(1, round(frac * biggest)))
      splits[lang]["train"] = random.Random(f"{seed}:{lang}").sample(rows, n)
    for lang in splits:
      splits[lang]["train"] = train_order(splits[lang]["train"], seed, f"en-{lang}")

    outputs = {}
    def write(path, lines):
      _write_lines(path, lines)
      outputs[str(path.relative_to(corpus.root))] = {
          "sha256": _sha256(path), "lines": len(lines)}
    for lang in langs:
      for split, rows in splits[lang].items():
        write(corpus.pair_file(lang, split),
              [f"{_tsv_field(s)}\t{_tsv_field(t)}" for s, t in rows])
        write(corpus.mono_file(lang, split), [_tsv_field(t) for _, t in rows])
    for split in layout_lib.SPLITS:
      english = sorted({s for lang in langs for s, _ in splits[lang][split]})
      if split == "train":
        english = train_order(english, seed, SOURCE)
      write(corpus.mono_file(SOURCE, split), [_tsv_field(s) for s in english])

    # The vocabulary's draw reads the train text in a fixed order, not the files'.
    texts = {lang: sorted(t for _, t in splits[lang]["train"]) for lang in langs}
    texts[SOURCE] = sorted({s for lang in langs for s, _ in splits[lang]["train"]})
    vocab_lib.train_vocab({k: v for k, v in texts.items() if v}, corpus.vocab_model,
                          vocab_size=vocab_size, seed=seed, draw_size=vocab_draw)
    outputs[str(corpus.vocab_model.relative_to(corpus.root))] = {
        "sha256": _sha256(corpus.vocab_model), "lines": None}

    manifest = {
        "options": options,
        "held_out_rule": (f"shared validation/test sources over languages with >= "
                          f"{SHARED_MIN_FACTOR * (validation_size + test_size)} "
                          f"pairs: {eligible}; others get their own"),
        "catalogs": [{"path": str(c.path), "language": lang, "domain": c.domain,
                      "sha256": _sha256(c.path), "entries": c.entries,
                      "kept": len(c.pairs), "undecodable": c.undecodable}
                     for lang, cats in read.items() for c in cats],
        "counts": {lang: {split: len(rows) for split, rows in s.items()}
                   for lang, s in splits.items()},
        "outputs": outputs,
        "corpus_hash": _hash_outputs(corpus.root, outputs),
    }
    corpus.manifest.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    _move_into_place(corpus.root, final.root)
  corpus = final
  log(f"held-out rule: {manifest['held_out_rule']}")
  log(format_counts(manifest))
  mislabelled = [c for c in manifest["catalogs"] if c["undecodable"]]
  if mislabelled:
    log(f"dropped {sum(c['undecodable'] for c in mislabelled)} entries of "
        f"{len(mislabelled)} catalogs whose bytes are not their declared "
        f"charset (e.g. {mislabelled[0]['path']})")
  log(f"built in {time.time() - started:.1f}s at {corpus.root}")
  log(f"corpus hash: {manifest['corpus_hash']}")
  return manifest


def format_counts(manifest: dict) -> str:
  """A train/validation/test table per pair."""
  lines = [f"{'pair':<10}{'train':>9}{'validation':>12}{'test':>7}"]
  for lang, c in sorted(manifest["counts"].items()):
    lines.append(f"{SOURCE + '-' + lang:<10}{c['train']:>9}{c['validation']:>12}"
                 f"{c['test']:>7}")
  return "\n".join(lines)


def verify(manifest_path: pathlib.Path | str) -> str:
  """Re-hashes catalogs and outputs; UserError naming the first mismatch."""
  manifest_path = pathlib.Path(manifest_path)
  if manifest_path.is_dir():
    manifest_path = layout_lib.CorpusLayout(manifest_path).manifest
  manifest = read_manifest(manifest_path)
  root = manifest_path.parent
  for cat in manifest["catalogs"]:
    path = pathlib.Path(cat["path"])
    if not path.is_file() or _sha256(path) != cat["sha256"]:
      raise UserError(f"catalog {path} changed since the build: rebuild with "
                      "`ptjf corpus build --force`")
  for rel, info in manifest["outputs"].items():
    path = root / rel
    if not path.is_file() or _sha256(path) != info["sha256"]:
      raise UserError(f"corpus file {path} is missing or modified: rebuild with "
                      "`ptjf corpus build --force`")
  if _hash_outputs(root, manifest["outputs"]) != manifest["corpus_hash"]:
    raise UserError(f"corpus hash in {manifest_path} does not match its outputs: "
                    "rebuild with `ptjf corpus build --force`")
  return manifest["corpus_hash"]
