"""`ptjf corpus build | verify | info`: the offline gettext corpus."""
import argparse
import json
import pathlib


def _build(args) -> int:
  from ptjf.tasks import corpus
  chosen = {k: v for k, v in (("langs", args.langs), ("locale_dir", args.locale_dir)) if v}
  corpus.build_corpus(
      args.out, **chosen,
      subsample=args.subsample, vocab_size=args.vocab_size,
      validation_size=args.validation_size, test_size=args.test_size,
      seed=args.seed, force=args.force, vocab_draw=args.vocab_draw)
  return 0


def _verify(args) -> int:
  from ptjf.tasks import corpus
  print(f"corpus ok; corpus hash: {corpus.verify(args.manifest)}")
  return 0


def _info(args) -> int:
  from ptjf.tasks import corpus, layout
  root = pathlib.Path(args.dir or layout.default_corpus_dir())
  hash_ = corpus.corpus_hash(root)
  manifest = json.loads(layout.CorpusLayout(root).manifest.read_text())
  print(f"corpus at {root}; options: {json.dumps(manifest['options'])}")
  print(corpus.format_counts(manifest))
  print(f"corpus hash: {hash_}")
  return 0


def register(subparsers) -> None:
  """Adds `corpus build|verify|info` to the `ptjf` parser (without importing TensorFlow)."""
  parser = subparsers.add_parser("corpus", help="build the offline corpus")
  sub = parser.add_subparsers(dest="corpus_command", metavar="ACTION",
                              required=True)
  build = sub.add_parser("build", help="gettext catalogs -> pairs, mono, vocab")
  build.add_argument("--out", help="corpus dir (default $PTJF_CORPUS_DIR or "
                     "data/corpus)")
  build.add_argument("--langs", nargs="+", help="languages paired with English "
                     "(default: the paper's, fr zh_CN ro hi gu gd sw)")
  build.add_argument("--locale-dir", help="gettext catalogs (default /usr/share/locale)")
  build.add_argument("--subsample", help="e.g. ro=0.01,hi=0.008: fraction of "
                     "the biggest pair's train size")
  build.add_argument("--vocab-size", type=int, default=8000)
  build.add_argument("--vocab-draw", type=int, default=200_000,
                     help="sentences in the temperature-sampled (tau 3.33) "
                     "draw the vocabulary is trained on")
  build.add_argument("--validation-size", type=int, default=200)
  build.add_argument("--test-size", type=int, default=200)
  build.add_argument("--seed", type=int, default=0)
  build.add_argument("--force", action="store_true", help="rebuild even if "
                     "up to date")
  build.set_defaults(func=_build)
  verify = sub.add_parser("verify", help="re-check catalog and output hashes")
  verify.add_argument("manifest", help="manifest.json, or the corpus folder")
  verify.set_defaults(func=_verify)
  info = sub.add_parser("info", help="counts and hash of a built corpus")
  info.add_argument("dir", nargs="?")
  info.set_defaults(func=_info)
