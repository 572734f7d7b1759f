"""Package discovery that pyproject.toml alone cannot express.

conf/ sits at the repository root (Hydra convention) but must ship inside the wheel as the
package ``hessdyn.conf`` (with one subpackage per config group folder) so that an installed,
non-editable hessdyn finds its configs. Everything else is declared in pyproject.toml.
"""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
conf_packages = ["hessdyn.conf"] + sorted(
    "hessdyn.conf." + ".".join(d.relative_to(HERE / "conf").parts)
    for d in (HERE / "conf").rglob("*")
    if d.is_dir() and any(d.rglob("*.yaml"))
)
setup(
    packages=find_packages(include=["hessdyn", "hessdyn.*"]) + conf_packages,
    package_data={name: ["*.yaml"] for name in conf_packages},
)
