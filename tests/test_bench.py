"""The bench's arithmetic (the bench itself times, so it is not a test)."""
import doctest
import importlib.util
import pathlib

_PATH = pathlib.Path(__file__).resolve().parent.parent / "bench" / "bench_engine.py"
_spec = importlib.util.spec_from_file_location("bench_engine", _PATH)
bench_engine = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_engine)


def test_docstring_examples():
  result = doctest.testmod(bench_engine)
  assert result.attempted > 0 and result.failed == 0


def test_matmul_flops_of_the_bench_model():
  spec = bench_engine.SPEC
  cfg = bench_engine.model_lib.preset(spec["preset"], spec["vocab_size"])
  flops = bench_engine.train_matmul_flops(cfg, spec["batch_size"], spec["inputs_length"],
                                          spec["targets_length"])
  assert round(flops / 1e9) == 194  # the docstring's figure

