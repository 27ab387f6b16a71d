"""The wheel takes the embedded sample and the default thresholds from where the repository keeps
them (data/rmgap_sample.jsonl beside its datasheet, thresholds.yaml at the top), so the repository
holds one copy of each. Everything else is in pyproject.toml."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SHIPPED = ("data/rmgap_sample.jsonl", "data/README.md", "thresholds.yaml")  # -> rmgap_pytest/_data/


class BuildWithData(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "rmgap_pytest" / "_data"
        self.mkpath(str(target))
        for source in SHIPPED:
            self.copy_file(source, str(target / Path(source).name))


setup(cmdclass={"build_py": BuildWithData})
