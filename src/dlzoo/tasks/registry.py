"""Tasks by name (``task=<name>`` in the config), as models and datasets are: a task module registers its
LightningModule with ``@register_task(name)``, and the class itself says how it is built from a config
(``from_config``), which datamodule it trains on, what input one forward pass takes and which figure ranks
its runs (``tasks.base.Task``). Adding a task is one file in ``src/dlzoo/tasks/`` plus its config: every
module of the package is imported on the first lookup (and installed plug-ins, ``dlzoo.plugins``), so no
list is edited. The lookup is lazy because building one task should not import the others' dependencies
before a name is asked for.
"""

from __future__ import annotations

import sys

from dlzoo.errors import ConfigError

TASKS: dict[str, type] = {}
_discovered = False


def register_task(name: str):
    """Class decorator: ``task=<name>`` builds this LightningModule."""
    def add(cls: type) -> type:
        if name in TASKS and TASKS[name] is not cls:
            raise ValueError(f"task {name!r} is registered twice ({TASKS[name].__name__}, {cls.__name__})")
        cls.task_name = name
        TASKS[name] = cls
        return cls

    return add


def _discover() -> None:
    global _discovered
    if not _discovered:
        from dlzoo.plugins import import_submodules, load_entry_points

        _discovered = True
        import_submodules(sys.modules[__package__])
        load_entry_points()


def list_tasks() -> list[str]:
    _discover()
    return sorted(TASKS)


def get_task(name: str) -> type:
    """The task class of ``task=<name>``; an unknown name lists the valid ones."""
    _discover()
    if name not in TASKS:
        raise ConfigError(f"task={name!r} is unknown; choose one of: {', '.join(sorted(TASKS))}")
    return TASKS[name]
