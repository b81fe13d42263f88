"""Distillation over student seeds: how much of the teacher-student gap a recipe closes, beyond one seed.

One `compress` run on the digits test split (360 images) moves by a few errors from seed to seed, and the
teacher-student gap is only ~7 errors, so the fraction of the gap closed by one run is within seed noise.
This runs the project's own command once per seed,

    python -m dlzoo.compress RUN_DIR --recipes RECIPE seed=S --metrics OUT/S.json --out-dir OUT/S

(each run: both students, distilled and from scratch, as MLflow runs nested under the teacher's run) and
records per seed and over the seeds: the teacher's, the scratch student's and the distilled student's test
accuracy and the fraction of the gap closed, (distilled - scratch) / (teacher - scratch), of the means.

    python benchmarks/distill_seeds.py                       # digits_lenet5 -> distill_lenet300, seeds 42 1 2
    python benchmarks/distill_seeds.py --seeds 42 1 2 3 4 --jobs 2
    python benchmarks/distill_seeds.py --run artifacts/runs/mnist1d_cnn1d_teacher --recipe distill

The teacher must be trained first (`dvc repro train@digits_lenet5`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from dlzoo.report.sections.compression import gap_closed  # None where there is no gap

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import header  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def one_seed(run_dir: Path, recipe: str, seed: int, out: Path, threads: int) -> dict:
    metrics = out / f"{seed}.json"
    cmd = [sys.executable, "-m", "dlzoo.compress", str(run_dir), "--recipes", recipe, f"seed={seed}",
           "--metrics", str(metrics), "--out-dir", str(out / str(seed))]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"seed {seed}: `{' '.join(cmd)}` failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    rows = json.loads(metrics.read_text())
    t = rows["source"]["test/acc"]
    d, s = rows[f"{recipe}-distilled"]["test/acc"], rows[f"{recipe}-scratch"]["test/acc"]
    row = {"seed": seed, "teacher": t, "scratch": s, "distilled": d, "gap_closed": gap_closed(t, s, d),
           "wall_s": round(time.perf_counter() - started, 1)}
    print(f"seed {seed}: teacher {t:.4f}  scratch {s:.4f}  distilled {d:.4f}  gap closed "
          f"{row['gap_closed'] if row['gap_closed'] is None else format(row['gap_closed'], '.0%')}  "
          f"({row['wall_s']:.0f} s)", flush=True)
    return row


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, default=Path("artifacts/runs/digits_lenet5"), help="the teacher's run folder")
    ap.add_argument("--recipe", default="distill_lenet300", help="a distillation recipe of conf/compress/")
    ap.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2])
    ap.add_argument("--jobs", type=int, default=1, help="seeds run at once (each with --threads threads)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "distill_seeds.json")
    args = ap.parse_args(argv)
    run_dir = args.run if args.run.is_absolute() else ROOT / args.run
    if not (run_dir / "run_info.json").exists():
        sys.exit(f"error: no trained teacher in {run_dir} (run_info.json missing); train it first: "
                 f"dvc repro train@{run_dir.name}")
    with tempfile.TemporaryDirectory(prefix="distill_seeds_") as tmp:
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            rows = list(pool.map(lambda s: one_seed(run_dir, args.recipe, s, Path(tmp), args.threads), args.seeds))
    mean = {k: statistics.mean(r[k] for r in rows) for k in ("teacher", "scratch", "distilled")}
    closed = gap_closed(mean["teacher"], mean["scratch"], mean["distilled"])
    per_seed = [r["gap_closed"] for r in rows if r["gap_closed"] is not None]
    summary = {"mean": mean, "gap_closed_of_means": closed,
               "gap_closed_per_seed": {"min": min(per_seed, default=None), "max": max(per_seed, default=None)},
               "distilled_beats_scratch": sum(r["distilled"] > r["scratch"] for r in rows)}
    print(f"mean over {len(rows)} seeds: teacher {mean['teacher']:.4f}  scratch {mean['scratch']:.4f}  distilled "
          f"{mean['distilled']:.4f}  gap closed {closed if closed is None else format(closed, '.0%')}; distilled "
          f"beats scratch in {summary['distilled_beats_scratch']} of {len(rows)}")
    record = {**header("distill_seeds", __file__, argv), "run": str(args.run),
              "recipe": args.recipe, "threads": args.threads, "jobs": args.jobs, "seeds": rows, "summary": summary}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
