"""``python -m dlzoo.accelerators PRESET``: can this machine run a trainer preset of conf/trainer/? The check
itself (and the Trainers built from the configured accelerator) lives in ``dlzoo.training.accelerators``."""

from __future__ import annotations

from dlzoo.errors import ConfigError
from dlzoo.training.accelerators import check_trainer


def main(argv: list[str] | None = None) -> None:
    """``python -m dlzoo.accelerators PRESET``: exit 2 with the one-line reason when this machine cannot run the
    trainer preset PRESET of conf/trainer/ (``make run TRAINER=...`` asks before it builds anything)."""
    import argparse
    import sys

    from hydra.errors import HydraException

    from dlzoo.configure import compose

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("preset", help="a file of conf/trainer/ (cpu, gpu, ddp, mps, ddp_cpu)")
    ap.add_argument("overrides", nargs="*", help="more overrides, e.g. trainer.devices=2")
    args = ap.parse_args(argv)
    try:
        check_trainer(compose([f"trainer={args.preset}", *args.overrides]).trainer)
    except (ConfigError, HydraException) as exc:
        print(f"error: {str(exc).splitlines()[0] if isinstance(exc, ConfigError) else exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
