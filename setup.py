"""Package discovery that pyproject.toml alone cannot express.

conf/ sits at the repository root (Hydra convention) but must ship inside the wheel as the
package ``hessdyn.conf`` so that an installed, non-editable hessdyn finds its configs.
Everything else is declared in pyproject.toml.
"""

from setuptools import find_packages, setup

setup(packages=find_packages(include=["hessdyn", "hessdyn.*"]) + ["hessdyn.conf"])
