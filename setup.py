"""ptjf: pre-training joint fine-tuning for imbalanced multilingual training.

The top-level folders map onto one import namespace:

    ptjf/      -> ptjf            (command line, shared errors)
    tasks/     -> ptjf.tasks      (corpora, vocabulary, SeqIO tasks, mixing rates)
    engine/    -> ptjf.engine     (local JAX trainer writing T5X's logdir layout)
    launch/    -> ptjf.launch     (experiment plans, sweeps, T5X / Cloud TPU commands)
    analysis/  -> ptjf.analysis   (event files -> tables, fronts, figures, report)
    gin/       -> ptjf/gin/       (gin files: data, not a package, shipped with the wheel)
"""
import pathlib

import setuptools

HERE = pathlib.Path(__file__).parent

PACKAGE_DIRS = {
    "ptjf": "ptjf",
    "ptjf.tasks": "tasks",
    "ptjf.engine": "engine",
    "ptjf.launch": "launch",
    "ptjf.analysis": "analysis",
}
# Data, not code: gin/ holds gin files only (no __init__.py, so it never hides gin-config);
# the wheel ships them as ptjf/gin/, where `ptjf.gin_files.gin_dir` finds them.
DATA_DIRS = {"ptjf.gin": "gin"}


def _requirements() -> list[str]:
  """Direct dependencies, pinned; requirements.lock pins the whole set."""
  lines = (HERE / "requirements.txt").read_text().splitlines()
  return [l.split("#")[0].strip() for l in lines if l.split("#")[0].strip()]


setuptools.setup(
    name="ptjf",
    version="0.1.0",
    description=("Pre-training joint fine-tuning (arXiv 2312.06134) for "
                 "imbalanced multilingual training, locally and on T5X."),
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11,<3.12",
    packages=[*PACKAGE_DIRS, *DATA_DIRS],
    package_dir={**PACKAGE_DIRS, **DATA_DIRS},
    package_data={"ptjf.gin": ["*.gin", "**/*.gin", "t5x/t5x_macros.json"],
                  "ptjf.launch": ["plans/*.toml"]},
    install_requires=_requirements(),
    entry_points={"console_scripts": ["ptjf = ptjf.cli:main"]},
)
