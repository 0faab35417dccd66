"""The logdir contract: a phase record survives its JSON, checkpoints are found by their names."""
import json

from ptjf import logdir


def test_a_record_reads_back_as_written():
  record = logdir.PhaseRecord(
      "ro_fr", "ptjf_r0.3", "ptjf", "finetune", {"fr": 0.7, "ro": 0.3}, steps=10, batch_size=8,
      start_mode="params_only", start_from="pretrain_s20/pretrain/checkpoint_20",
      corpus_hash="c0ffee", engine="local", task_sizes={"fr": 400, "ro": 40},
      overrides={"WARMUP_STEPS": 5}, label_smoothing=0.1)
  data = json.loads(record.to_json())
  assert data["start"] == {"mode": "params_only", "from": "pretrain_s20/pretrain/checkpoint_20"}
  assert "tau" not in data and "unimax" not in data   # written only when known
  assert logdir.PhaseRecord.from_dict(data) == record
  assert record.parent_steps == 20


def test_a_bare_logdir_record_takes_its_names_from_the_fallback():
  record = logdir.PhaseRecord.from_dict({"steps": 4, "rates": {}}, experiment="e", run="r",
                                        phase="main")
  assert (record.experiment, record.run, record.phase, record.method) == ("e", "r", "main",
                                                                           "unknown")
  assert record.parent_steps == 0


def test_checkpoint_steps_lists_checkpoint_folders_only(tmp_path):
  for name in ("checkpoint_20", "checkpoint_3", "damaged_checkpoint_30", "checkpoint_x"):
    (tmp_path / name).mkdir()
  (tmp_path / "checkpoint_40").write_text("")   # a file, not a checkpoint
  assert logdir.checkpoint_steps(tmp_path) == [3, 20]
  assert logdir.checkpoint_steps(tmp_path / "missing") == []
