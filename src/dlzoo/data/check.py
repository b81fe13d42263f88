"""Check the materialised ``data/`` against ``data.dvc`` and put it in the DVC cache.

``dvc status`` cannot hash a workspace folder whose cache entry is missing (a fresh clone), so this runs
``dvc commit -f data.dvc``, which hashes ``data/`` and caches it, and compares the recorded md5 before and
after. A mismatch restores ``data.dvc`` and fails with both hashes and the installed packages whose versions
differ from ``requirements.lock``: the embedded datasets were built differently here, and the result would
not be the data the runs were tracked on.
"""

from __future__ import annotations

import subprocess
import sys

from dlzoo.paths import project_root
from dlzoo.tracking.environment import LOCK_FILE, describe_drift, lock_drift, lock_path
from dlzoo.tracking.mlflow_utils import data_version


def why_different(root) -> str:
    """What may have built the data differently: the packages whose installed versions are not the lock's."""
    lock = lock_path(root)
    if lock is None:
        return f"no {LOCK_FILE} to compare the installed versions with; check the scikit-learn / mnist1d / numpy versions"
    drift = lock_drift(lock)
    if not drift:
        return f"the installed packages match {lock.name}, so data/ was probably edited"
    return (f"these packages differ from {lock.name}: {describe_drift(drift)}; install the locked versions with "
            f"`pip install -c {lock.name} -e .` (what `make setup` does)")


def main() -> None:
    root = project_root()
    dvc_file = root / "data.dvc"
    if not dvc_file.exists():
        sys.exit(f"error: {dvc_file} not found; create it with `dvc add data`")
    before_text, before = dvc_file.read_text(), data_version(root)
    out = subprocess.run([sys.executable, "-m", "dvc", "commit", "-f", "-q", "data.dvc"], cwd=root,
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"error: `dvc commit data.dvc` failed:\n{out.stderr or out.stdout}")
    after = data_version(root)
    if after != before:
        dvc_file.write_text(before_text)
        sys.exit(f"error: data/ (md5 {after}) does not match data.dvc (md5 {before}). The embedded datasets were "
                 f"built differently on this machine, or data/ was edited: {why_different(root)}. Then run "
                 "`make data` again, or `dvc pull` from a remote.")
    print(f"data/ matches data.dvc (md5 {after})")


if __name__ == "__main__":
    main()
