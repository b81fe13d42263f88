"""Compress a trained run: ``python -m dlzoo.compress RUN_DIR --recipes R1,R2 [key=value ...]``.

RUN_DIR is a training output folder (``run_info.json``, ``config.yaml``, ``checkpoints/``); each recipe is a
file of ``conf/compress/``. Every result becomes an MLflow run nested under the source run; the rows
(source first) go to ``--metrics`` as JSON and the compressed weights under ``--out-dir``.

    python -m dlzoo.compress artifacts/runs/digits_lenet300 --recipes quantize_dynamic,prune_global
    python -m dlzoo.compress artifacts/runs/digits_lenet5 --recipes prune_layer schedule=[0.5,0.8] finetune.epochs=1
    python -m dlzoo.compress artifacts/runs/mnist1d_cnn1d --recipes distill temperature=2 alpha=0.5
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dlzoo.errors import DlzooError
from dlzoo.paths import project_root


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path, help="a training output folder (holds run_info.json)")
    ap.add_argument("--recipes", required=True, help="comma-separated names of conf/compress/*.yaml")
    ap.add_argument("--metrics", type=Path, default=None,
                    help="metrics JSON (default: metrics/compress/<run folder name>.json)")
    ap.add_argument("--out-dir", type=Path, default=None,
                    help="folder for the compressed models (default: artifacts/compressed/<run folder name>)")
    ap.add_argument("overrides", nargs="*", help="recipe overrides, e.g. finetune.epochs=2 (applied where the key exists)")
    args = ap.parse_intermixed_args(argv)  # overrides may follow --recipes, as in the examples above
    import logging
    import warnings

    from dlzoo.compress.runner import compress, write_metrics
    from dlzoo.console import quiet

    quiet()
    for name in ("pytorch_lightning", "lightning.pytorch", "mlflow.pytorch"):  # each fine-tune's Trainer banner
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*(Sparse|sparse|eval mode).*")
    root = project_root()
    try:
        rows = compress(args.run_dir, [r for r in args.recipes.split(",") if r],
                        args.out_dir or root / "artifacts" / "compressed" / args.run_dir.name, args.overrides, root)
    except DlzooError as exc:
        sys.exit(f"error: {exc}")
    write_metrics(rows, args.metrics or root / "metrics" / "compress" / f"{args.run_dir.name}.json")


if __name__ == "__main__":
    main()
