"""setuptools, beside pyproject.toml (which holds the metadata): the packages, and the repository folders a run needs.

conf/, data/, train/ and measurements/results/ stay at the root of the checkout (run.py, the tests and the README point
there); a wheel carries them as tacos/_bundled/<folder> (package-dir mapping + package data), where tacos.paths
finds them when TACOS is installed outside a checkout.
"""
from setuptools import find_packages, setup

BUNDLED = ("conf", "data", "train", "measurements/results")


def _package(folder: str) -> str:
    return "tacos._bundled." + folder.replace("/", ".")


setup(
    packages=find_packages(include=["tacos", "tacos.*"]) + [_package(f) for f in BUNDLED],
    package_dir={_package(f): f for f in BUNDLED},
    package_data={"tacos": ["prompts/*.txt"], **{_package(f): ["**/*"] for f in BUNDLED}},
    exclude_package_data={_package(f): ["**/__pycache__/*", "*.py[co]"] for f in BUNDLED},
)
