"""The event reader on a real T5X logdir, a truncated file and bare dirs."""
import json
import pathlib
import shutil

import pytest

from ptjf.analysis import events
from ptjf.analysis import runs
from ptjf.errors import UserError

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "t5x_real"
FR, RO = "translate_en_fr", "translate_en_ro"


def _pick(rows, **kw):
  return sorted((r for r in rows if all(getattr(r, k) == v
                                        for k, v in kw.items())),
                key=lambda r: r.step)


def test_real_t5x_logdir_tidy_rows():
  # Written before ptjf's T5X model reported the plain cross-entropy.
  with pytest.warns(UserWarning, match="label-smoothed `loss` stands in"):
    phases, rows = events.read_runs(FIXTURE)
  assert {(p.run, p.phase, p.method) for p in phases} == {
      ("pretrain", "pretrain", "ptjf"), ("rate_0.7", "finetune", "ptjf")}
  val = _pick(rows, run="rate_0.7", split="validation", task=RO, metric="loss")
  assert [r.step for r in val] == [2, 4]
  assert [r.global_step for r in val] == [8, 10]  # pretrain/checkpoint_6 + step
  assert val[-1].examples_seen == pytest.approx(4 * 8 * 0.3)
  assert 3.0 < val[-1].value < 7.0
  stand_in = _pick(rows, run="rate_0.7", split="validation", task=RO,
                   metric=events.LOSS)
  assert [r.value for r in stand_in] == [r.value for r in val]
  # The pretrain phase never trained on ro: zero examples, not unknown.
  pre = _pick(rows, run="pretrain", split="validation", task=RO, metric="loss")
  assert [r.examples_seen for r in pre] == [0.0, 0.0, 0.0]
  train = _pick(rows, run="pretrain", split="train", metric="loss")
  assert [r.step for r in train] == [2, 4, 6] and train[0].task == "*"
  # BLEU: "eval/bleu" tag read as "bleu"; steps the event file missed come
  # from the -metrics.jsonl lines.
  bleu = _pick(rows, run="rate_0.7", split="inference", task=FR, metric="bleu")
  assert [r.step for r in bleu] == [2, 4]
  assert not _pick(rows, metric="config")


def test_bare_t5x_model_dir_without_phase_json(tmp_path):
  model_dir = tmp_path / "my_model"
  shutil.copytree(FIXTURE / "finetune", model_dir)
  (model_dir / "ptjf_phase.json").unlink()
  phases, rows = events.read_runs(model_dir)
  (phase,) = phases
  assert phase.batch_size == 8 and phase.steps == 4 and phase.parent_steps == 6
  assert phase.rates == {FR: 0.7, RO: 0.3}
  val = _pick(rows, split="validation", task=RO, metric="loss")
  assert [r.examples_seen for r in val] == pytest.approx([4.8, 9.6])


def test_truncated_event_file_warns_and_keeps_what_was_read(tmp_path):
  phase_dir = tmp_path / "exp" / "run" / "main"
  shutil.copytree(FIXTURE / "pretrain", phase_dir)
  (event_file,) = (phase_dir / "training_eval" / FR).glob("events*")
  whole = events.read_scalars(event_file)
  data = event_file.read_bytes()
  event_file.write_bytes(data[:int(len(data) * 0.8)])
  with pytest.warns(UserWarning, match=str(event_file.name)):
    _, rows = events.read_runs(tmp_path)
  kept = [(r.step, r.metric, r.value) for r in rows   # as written, no stand-ins
          if r.split == "validation" and r.task == FR and r.metric != events.LOSS]
  assert 0 < len(kept) < len(whole)
  assert kept == [(s, tag, v) for s, tag, v in whole[:len(kept)]]


def test_names_from_layout_when_json_lacks_them(tmp_path):
  phase_dir = tmp_path / "exp1" / "runA" / "main"
  shutil.copytree(FIXTURE / "pretrain", phase_dir)
  (phase_dir / "ptjf_phase.json").write_text(json.dumps(
      {"method": "scalarization", "rates": {FR: 1.0}, "steps": 6,
       "batch_size": 8}))
  (phase,) = runs.discover_phases(tmp_path)
  assert (phase.experiment, phase.run, phase.phase) == ("exp1", "runA", "main")


def test_no_runs_is_a_user_error(tmp_path):
  with pytest.raises(UserError, match="no runs"):
    runs.discover_phases(tmp_path)
  with pytest.raises(UserError, match="does not exist"):
    runs.discover_phases(tmp_path / "missing")


def test_corrupt_record_in_the_middle_warns(tmp_path):
  phase_dir = tmp_path / "exp" / "run" / "main"
  shutil.copytree(FIXTURE / "pretrain", phase_dir)
  (event_file,) = (phase_dir / "training_eval" / FR).glob("events*")
  data = bytearray(event_file.read_bytes())
  middle = len(data) // 2
  data[middle:middle + 8] = bytes(255 - b for b in data[middle:middle + 8])
  event_file.write_bytes(bytes(data))
  with pytest.warns(UserWarning, match="truncated or corrupt"):
    kept = events.read_scalars(event_file)
  assert kept  # what came before the damage
