"""The one build step pyproject.toml cannot say: the sample configuration goes into the wheel.

The files integrators edit live at the repository's root, where README.md, ``cti check`` and the tests
name them (trunk_map.yaml, agents/, ivr_flows/, recordings/prompts/, cases.yaml, asterisk-conf/). A
wheel gets a copy of them as ``cti/sample/``, with the same layout, so that an installed cti runs
``cti demo`` (and ``cti check``, ``cti serve``) with no settings from any folder: ``cti.settings``
reads them from there when no settings file names other paths. They are copied at build time rather
than kept twice in git. An editable install copies nothing: the checkout's own files are the sample.
MANIFEST.in puts the same files into the sdist, so that a wheel built from it has them too.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

# what cti/sample/ holds, relative to the repository's root (and to cti/sample/): a file or a folder
SAMPLE = ("trunk_map.yaml", "cases.yaml", "agents", "ivr_flows", "recordings/prompts/zh", "asterisk-conf",
          "knowledge")


class BuildWithSample(build_py):
    """build_py, then the sample configuration copied into the build's cti/sample/."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:  # the checkout is the sample (cti.settings.sample_folder)
            return
        root = Path(__file__).resolve().parent
        target = Path(self.build_lib) / "cti" / "sample"
        for name in SAMPLE:
            source = root / name
            if source.is_dir():
                shutil.copytree(source, target / name, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"))
            elif source.is_file():
                (target / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target / name)
            else:
                raise FileNotFoundError(f"{source}: part of the sample configuration, missing from the tree")


setup(cmdclass={"build_py": BuildWithSample})
