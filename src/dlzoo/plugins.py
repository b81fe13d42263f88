"""Find model families and dataset sources without an import list.

Adding a model is one file in ``src/dlzoo/models/`` (a ``@register_model()`` builder) plus one
``conf/model/<name>.yaml``; adding a dataset is one file in ``src/dlzoo/data/sources/`` (a
``@register_dataset(...)`` loader) plus one ``conf/data/<name>.yaml``. Both packages import every module
they contain, so nothing else is edited.

Why discovery and not Hydra ``_target_`` paths in ``conf/model`` (lightning-hydra-template's way): the
registries are what let ``model.name=<typo>`` list the valid names, ``model.<key>`` list the builder's
valid options before training, and the registry-driven tests loop over every model. A module imported here
may still be listed in an explicit import elsewhere; Python imports it once, so such a line is harmless.

Code outside the source tree (an installed dlzoo) plugs in through the ``dlzoo.plugins`` entry-point group
of its own package (``[project.entry-points."dlzoo.plugins"] mine = "mypkg.models"``): each entry point's
module is imported once, where it registers its models and datasets.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

ENTRY_POINT_GROUP = "dlzoo.plugins"
_entry_points_loaded = False


def import_submodules(package: ModuleType) -> list[str]:
    """Import every module of ``package`` (not recursively, in name order); returns their names."""
    names = sorted(m.name for m in pkgutil.iter_modules(package.__path__, package.__name__ + "."))
    for name in names:
        importlib.import_module(name)
    return names


def load_entry_points() -> None:
    """Import the modules that installed packages declare under the ``dlzoo.plugins`` entry-point group."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        ep.load()
