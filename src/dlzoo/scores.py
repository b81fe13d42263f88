"""The key figures of a result JSON, as the numbers-only metrics file that DVC compares.

Every pipeline stage writes its full result to ``metrics/...json`` (run ids, names, every test figure: what the
report and the leaderboard read) and then, with this command, a handful of its figures to ``scores/...json``,
the file declared under ``metrics:`` in dvc.yaml. ``dvc metrics show/diff`` and ``dvc exp show`` read only
``scores/``: numbers, a few per experiment, committed to git.

    python -m dlzoo.scores metrics/digits_mlp.json scores/digits_mlp.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

# The headline figure(s) of a result: classification accuracy, regression R^2, detection mAP, clustering
# accuracy of a VAE's latent space, a GAN's modes covered and share of high-quality samples, the sample quality
# of a generative run (accuracy for the requested label, Frechet distance).
KEY_FIGURES = ("test/acc", "test/r2", "test/map", "test/kmeans_acc", "test/modes", "test/hq", "samples/acc",
               "samples/fd")
# what a result without any of those (a comparison's variant) is scored by: the first one it has
FALLBACK = ("val/acc", "val/r2", "val/loss", "test/loss")
# nested results whose name adds nothing to a column name (a comparison's `variants`) or that repeat another
# stage's figure (compression's `source`, the trained run that train@ already scores)
FLATTEN, SKIP = ("variants",), ("source",)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def key_figures(result: dict, prefix: str = "") -> dict[str, float]:
    """``{name: value}`` of the key figures of ``result``, and of the results nested in it (one level of
    compression recipes or comparison variants), their names prefixed with the nested result's key."""
    own = {k: float(result[k]) for k in KEY_FIGURES if _number(result.get(k))}
    if not own:
        own = next(({k: float(result[k])} for k in FALLBACK if _number(result.get(k))), {})
    out = {f"{prefix}{k}": v for k, v in own.items()}
    for name, sub in result.items():
        if isinstance(sub, dict) and name not in SKIP:
            out |= key_figures(sub, prefix if name in FLATTEN else f"{prefix}{name}/")
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("result", type=Path, help="a stage's full result JSON (metrics/...json)")
    ap.add_argument("out", type=Path, help="the numbers-only metrics file DVC reads (scores/...json)")
    args = ap.parse_args(argv)
    if not args.result.exists():
        sys.exit(f"error: {args.result} is missing: the stage that writes it (`dvc repro`) did not finish")
    figures = key_figures(json.loads(args.result.read_text()))
    if not figures:
        sys.exit(f"error: {args.result} holds none of {', '.join(KEY_FIGURES + FALLBACK)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
