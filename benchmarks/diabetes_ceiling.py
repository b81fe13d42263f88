"""How far R² can go on the project's diabetes test split: standard scikit-learn regressors on the same
prepared splits (train / val / test of ``dvc repro prepare``), and ordinary least squares on many random
80/20 splits of the same 442 patients, for context. Each model's settings are fixed or chosen by
cross-validation on the training split; the test split is only read to report.

Issue 5 asks the best diabetes model to reach R² >= 0.45 on the test split; this shows what the split allows.

    python benchmarks/diabetes_ceiling.py              # -> benchmarks/results/diabetes_ceiling.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import header  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _models() -> dict:
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
    from sklearn.linear_model import HuberRegressor, LassoCV, LinearRegression, RidgeCV
    from sklearn.model_selection import GridSearchCV
    from sklearn.svm import SVR

    return {
        "least squares": LinearRegression(),
        "ridge (CV)": RidgeCV(alphas=np.logspace(-3, 3, 30)),
        "lasso (CV)": LassoCV(cv=5, random_state=0),
        "huber": HuberRegressor(max_iter=1000),
        "SVR rbf (CV)": GridSearchCV(SVR(), {"C": [1, 10, 100, 1000], "epsilon": [1, 10, 30]}, cv=5),
        "random forest": RandomForestRegressor(300, min_samples_leaf=5, random_state=0),
        "gradient boosting": GradientBoostingRegressor(n_estimators=100, max_depth=2, learning_rate=0.05,
                                                       subsample=0.8, random_state=0),
    }


def main(argv: list[str] | None = None) -> None:
    from sklearn.datasets import load_diabetes
    from sklearn.metrics import r2_score
    from sklearn.model_selection import ShuffleSplit, cross_val_score
    from sklearn.linear_model import LinearRegression
    from sklearn.preprocessing import StandardScaler

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--splits", type=Path, default=ROOT / "artifacts/splits/diabetes")
    ap.add_argument("--random-splits", type=int, default=50)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/diabetes_ceiling.json")
    args = ap.parse_args(argv)
    if not (args.splits / "x_test.npy").exists():
        sys.exit(f"error: {args.splits}/x_test.npy not found: run `dvc repro prepare` (or `python -m dlzoo.prepare`)")
    x, y = {}, {}
    for split in ("train", "val", "test"):
        x[split], y[split] = np.load(args.splits / f"x_{split}.npy"), np.load(args.splits / f"y_{split}.npy")
    scaler = StandardScaler().fit(x["train"])
    x = {k: scaler.transform(v) for k, v in x.items()}
    on_split = {}
    for name, model in _models().items():
        model.fit(x["train"], y["train"])
        on_split[name] = {s: round(float(r2_score(y[s], model.predict(x[s]))), 4) for s in ("val", "test")}
        print(f"{name:18s} val R² {on_split[name]['val']:.3f}  test R² {on_split[name]['test']:.3f}")
    xa, ya = load_diabetes(return_X_y=True)
    scores = cross_val_score(LinearRegression(), xa, ya, scoring="r2",
                             cv=ShuffleSplit(args.random_splits, test_size=0.2, random_state=0))
    context = {"n": len(scores), "mean": round(float(scores.mean()), 4), "sd": round(float(scores.std()), 4),
               "min": round(float(scores.min()), 4), "max": round(float(scores.max()), 4),
               "share_at_least_0.45": round(float((scores >= 0.45).mean()), 3)}
    print(f"least squares on {context['n']} random 80/20 splits: R² {context['mean']:.3f} ± {context['sd']:.3f} "
          f"(min {context['min']:.3f}, max {context['max']:.3f}); {context['share_at_least_0.45']:.0%} reach 0.45")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({**header("diabetes_ceiling", __file__, argv), "project_split": on_split,
                                    "least_squares_random_splits": context}, indent=1) + "\n")


if __name__ == "__main__":
    main()
