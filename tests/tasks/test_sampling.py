"""Sampling rates: seqio agreement, input checks (worked examples: test_doctests)."""
import pytest
import seqio
import tensorflow as tf

from ptjf.errors import UserError
from ptjf.tasks import sampling


def test_static_grid_and_two_task_rates():
  assert sampling.static_grid() == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
  assert sampling.two_task_rates("ro", "fr", 0.3) == {"ro": 0.3, "fr": 0.7}
  assert sampling.two_task_rates("ro", "fr", 0.7) == {"ro": 0.7, "fr": 0.3}
  with pytest.raises(UserError, match="strictly between 0 and 1"):
    sampling.two_task_rates("ro", "fr", 1.0)
  with pytest.raises(UserError, match="two different tasks"):
    sampling.two_task_rates("ro", "ro", 0.5)
  with pytest.raises(UserError):
    sampling.static_grid(1)


def test_temperature_matches_seqio_mixing_rate_num_examples():
  sizes = {"mixing_test_a": 4000, "mixing_test_b": 250, "mixing_test_c": 7}
  vocab = seqio.PassThroughVocabulary(size=10)
  for name, n in sizes.items():
    seqio.TaskRegistry.remove(name)
    seqio.TaskRegistry.add(
        name, source=seqio.FunctionDataSource(
            lambda split, shuffle_files: tf.data.Dataset.range(1),
            splits=["train"], num_input_examples={"train": n}),
        output_features={"targets": seqio.Feature(vocab)})
  for tau in (1, 2, 3.3, 5):
    theirs = {name: seqio.mixing_rate_num_examples(
        seqio.get_mixture_or_task(name), temperature=tau) for name in sizes}
    total = sum(theirs.values())
    ours = sampling.temperature_rates(sizes, tau)
    assert ours == pytest.approx({k: v / total for k, v in theirs.items()})
  # Hand-computed: sqrt(400) = 20, sqrt(40) = 6.3246 -> 0.7597, 0.2403.
  assert sampling.temperature_rates({"fr": 400, "ro": 40}, 2) == pytest.approx(
      {"fr": 0.759747, "ro": 0.240253}, abs=1e-6)
  assert sampling.temperature_rates({"fr": 400, "ro": 40}, 1) == pytest.approx(
      {"fr": 10 / 11, "ro": 1 / 11})


def test_unimax_worked_examples():
  sizes = {"a": 10, "b": 100, "c": 1000}
  assert sampling.unimax_rates(sizes, 300) == pytest.approx(
      {"a": 10 / 300, "b": 100 / 300, "c": 190 / 300})
  assert sampling.unimax_rates(sizes, 300, max_epochs=4) == pytest.approx(
      {"a": 40 / 300, "b": 130 / 300, "c": 130 / 300})
  # A budget no cap binds is uniform; the largest budget is proportional.
  assert sampling.unimax_rates(sizes, 30) == pytest.approx(
      {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})
  assert sampling.unimax_rates(sizes, 1110) == pytest.approx(
      {"a": 10 / 1110, "b": 100 / 1110, "c": 1000 / 1110})


def test_unimax_caps_and_uniformity():
  sizes = {f"t{i}": s for i, s in enumerate([3, 50, 50, 700, 9000, 12000])}
  for budget, epochs in [(1000, 1), (5000, 2), (20000, 1), (40000, 3)]:
    rates = sampling.unimax_rates(sizes, budget, epochs)
    assert sum(rates.values()) == pytest.approx(1.0)
    alloc = {t: r * budget for t, r in rates.items()}
    assert all(alloc[t] <= epochs * sizes[t] + 1e-6 for t in sizes)
    uncapped = [alloc[t] for t in sizes if alloc[t] < epochs * sizes[t] - 1e-6]
    assert uncapped and max(uncapped) - min(uncapped) < 1e-6
    assert all(alloc[t] <= min(uncapped) + 1e-6 for t in sizes)


@pytest.mark.parametrize("call, message", [
    (lambda: sampling.normalize({}), "no tasks"),
    (lambda: sampling.normalize({"a": 0.5, "b": 0}), "rate 0 of task 'b'"),
    (lambda: sampling.normalize({"a": -1}), "not a positive number"),
    (lambda: sampling.normalize({"a": float("nan")}), "not a positive number"),
    (lambda: sampling.temperature_rates({"a": 1}, 0), "temperature 0"),
    (lambda: sampling.temperature_rates({"a": 1}, -2), "temperature -2"),
    # The hint does not rule out 0 < tau < 1, which is accepted.
    (lambda: sampling.temperature_rates({"a": 1}, 0), r"^(?!.*tau >= 1).*0 < tau < 1"),
    (lambda: sampling.temperature_rates({}, 2), "no tasks"),
    (lambda: sampling.temperature_rates({"a": 0}, 2), "size 0 of task 'a'"),
    (lambda: sampling.unimax_rates({"a": 10, "b": 20}, 31), r"not in \(0, 30\]"),
    (lambda: sampling.unimax_rates({"a": 10, "b": 20}, 61, 2), r"not in \(0, 60\]"),
    (lambda: sampling.unimax_rates({"a": 10}, 0), "budget 0"),
    (lambda: sampling.unimax_rates({"a": 10}, 5, 0), "max_epochs 0"),
])
def test_bad_input_is_a_one_line_user_error(call, message):
  with pytest.raises(UserError, match=message) as e:
    call()
  assert "\n" not in str(e.value) and ": " in str(e.value)
