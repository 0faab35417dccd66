"""`ptjf tpu run` (ptjf.launch.tpu) against a fake gcloud and gsutil on PATH."""
import argparse
import pathlib
import shlex

import pytest

from ptjf.errors import UserError
from ptjf.launch import tpu

# Logs each call; `gsutil stat` and `gcloud describe` succeed for what
# FAKE_DONE lists; an ssh call fails if its arguments contain FAKE_FAIL.
FAKE = """#!/bin/sh
{ printf '%s' "$(basename "$0")"; printf '\t%s' "$@"; echo; } >> "$FAKE_LOG"
for arg in "$@"; do
  if grep -qxF -- "$arg" "$FAKE_DONE" 2>/dev/null; then exit 0; fi
done
case "$*" in
  *" stat "*|*" describe "*) exit 1 ;;
  *"--worker=all"*) case "$*" in *"$FAKE_FAIL"*) exit 3 ;; esac ;;
esac
exit 0
"""

BASE = ["tpu", "run", "--tpu-name=pod", "--zone=us-central2-b",
        "--tpu-type=v4-128", "--bucket=gs://b/ptjf/", "--model-size=xl"]


@pytest.fixture()
def fake_cloud(tmp_path, monkeypatch) -> dict[str, pathlib.Path]:
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  for name in ("gcloud", "gsutil"):
    (bin_dir / name).write_text(FAKE)
    (bin_dir / name).chmod(0o755)
  paths = {"log": tmp_path / "calls.log", "done": tmp_path / "done.txt"}
  paths["done"].write_text("")
  monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
  monkeypatch.setenv("FAKE_LOG", str(paths["log"]))
  monkeypatch.setenv("FAKE_DONE", str(paths["done"]))
  monkeypatch.setenv("FAKE_FAIL", "never-matches")
  return paths


def _main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(prog="ptjf")
  tpu.register_tpu(parser.add_subparsers())
  args = parser.parse_args(argv)
  return args.func(args)


def _calls(paths) -> list[list[str]]:
  """argv of each fake gcloud / gsutil call, in order."""
  if not paths["log"].exists():
    return []
  return [line.split("\t") for line in paths["log"].read_text().splitlines()]


def _remote(argv: list[str]) -> list[str]:
  """The T5X argv inside an ssh command's argv."""
  command = [a for a in argv if a.startswith("--command=")][0]
  return shlex.split(command.removeprefix("--command="))


def test_dry_run_prints_the_exact_chain_and_runs_nothing(fake_cloud, capsys):
  assert _main(BASE + ["--dry-run", "--split=100000+400000",
                       "--split=200000+300000"]) == 0
  assert _calls(fake_cloud) == []
  lines = capsys.readouterr().out.splitlines()
  assert lines[:2] == [
      "# create: skipped if this succeeds: gcloud compute tpus tpu-vm "
      "describe pod --zone=us-central2-b",
      "gcloud compute tpus tpu-vm create pod --zone=us-central2-b "
      "--accelerator-type=v4-128 --version=tpu-ubuntu2204-base"]
  assert lines[2::2] == [
      f"# {name}: skipped if this succeeds: gsutil -q stat gs://b/ptjf/"
      f"ptjf_mc4_xl/{name}/checkpoint_{steps}/commit_success.txt"
      for name, steps in (("pretrain", 200000), ("finetune_100000", 400000),
                          ("finetune_200000", 300000))]
  ssh = [shlex.split(l) for l in lines[3::2]]
  assert all(argv[:8] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "pod",
                          "--zone=us-central2-b", "--worker=all"]
             for argv in ssh)
  pretrain, finetune = _remote(ssh[0]), _remote(ssh[1])
  assert pretrain[:7] == [
      "env", "PYTHONPATH=t5x_src/t5x:t5x_src/airio:t5x_src/jestimator",
      "t5x_venv/bin/python", "-P", "-m", "t5x.train",
      "--gin_search_paths=ptjf"]
  assert pretrain[7:] == [
      "--gin_file=gin/t5x/models/mt5_xl.gin",
      "--gin_file=gin/t5x/mc4/pretrain.gin",
      "--gin_file=gin/t5x/start/scratch.gin",
      "--gin_bindings=partitioning.PjitPartitioner.num_partitions = 4",
      '--gin.MODEL_DIR="gs://b/ptjf/ptjf_mc4_xl/pretrain"',
      "--gin.TRAIN_STEPS=200000",
      '--gin.TFDS_DATA_DIR="gs://b/ptjf/tfds"']
  assert "--gin_file=gin/t5x/start/params_only.gin" in finetune
  assert finetune[-1] == (
      '--gin.INITIAL_CHECKPOINT_PATH='
      '"gs://b/ptjf/ptjf_mc4_xl/pretrain/checkpoint_100000"')


def test_first_run_runs_everything_in_order(fake_cloud):
  assert _main(BASE) == 0
  calls = _calls(fake_cloud)
  ran = [c[4] for c in calls if c[0] == "gcloud"]
  assert ran == ["describe", "create", "ssh", "ssh"]
  assert "--gin.TRAIN_STEPS=300000" in _remote(calls[-1])


def test_rerun_skips_the_tpu_and_jobs_whose_last_checkpoint_exists(fake_cloud):
  fake_cloud["done"].write_text(
      "pod\ngs://b/ptjf/ptjf_mc4_xl/pretrain/checkpoint_200000/"
      "commit_success.txt\n")
  assert _main(BASE) == 0
  calls = _calls(fake_cloud)
  ssh = [c for c in calls if "ssh" in c]
  assert len(ssh) == 1 and "finetune_200000" in " ".join(ssh[0])
  assert not any("create" in c for c in calls)


def test_a_failing_job_stops_the_chain_with_a_user_error(fake_cloud,
                                                         monkeypatch):
  monkeypatch.setenv("FAKE_FAIL", "ptjf_mc4_xl/pretrain")
  with pytest.raises(UserError, match="pretrain failed: .* re-run"):
    _main(BASE)
  ssh = [" ".join(c) for c in _calls(fake_cloud) if "ssh" in c]
  assert len(ssh) == 1 and "finetune" not in ssh[0]


@pytest.mark.parametrize("extra, message", [
    (["--bucket=b"], "not a gs:// path"),
    (["--split=2e5+3e5"], "bad split"),
    (["--split=150001+1000", "--split=200000+1"], "has no pre-training"),
])
def test_bad_arguments_are_user_errors(fake_cloud, extra, message):
  with pytest.raises(UserError, match=message):
    _main(BASE + extra + ["--dry-run"])
