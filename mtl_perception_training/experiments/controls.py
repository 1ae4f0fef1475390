"""The two controls of every uncertainty-weighting run: do the *learned* s_i matter, or where they end?

- ``fixed-learned-<tasks>``: fixed weights equal to the uncertainty run's weights at its last
  step (``w_<task>`` of its train.csv, kept in its result.json), per seed: seed k takes the
  weights seed k of the uncertainty run ended with, so it is trained after that run. Under
  Adam, a learned weight that falls fast also shrinks that task's decoder steps for hundreds
  of steps; fixed weights from the start do not, so this separates the path from the end.
- ``normalized-<tasks>``: each task loss over twice its running mean, nothing learned
  (``weighting.method: normalized``): the uncertainty weighting's fixed point w_i = 1/(2 L_i)
  from the first step.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mtl_perception.errors import UserError

from mtl_perception_training.experiments.plan import RESULT_FILE, RunSpec, run_dir

def placeholder_weighting(spec: RunSpec) -> dict[str, Any]:
    """A valid weighting for checking a control's config before its source run has finished."""
    return {"method": "fixed", "weights": {t: 1.0 for t in spec.tasks}}


def learned_weighting(spec: RunSpec, source: RunSpec, out_dir: Path, seed: int) -> dict[str, Any]:
    """Fixed weights = ``source``'s effective weights at its last step of ``seed``."""
    path = run_dir(out_dir, source, seed) / RESULT_FILE
    if not path.is_file():
        raise UserError(
            f"{spec.name} seed {seed} takes the final weights of {source.name} seed {seed}, which has not finished "
            f"({path} missing); run it first (e.g. --only '{source.name}' --only '{spec.name}')"
        )
    result = json.loads(path.read_text())
    final = result.get("final", {})
    missing = [t for t in spec.tasks if f"w_{t}" not in final]
    if result.get("status") != "ok" or missing:
        raise UserError(f"{spec.name} seed {seed}: {path} has no final weights for {missing or list(spec.tasks)} "
                        f"(status {result.get('status')!r})")
    return {"method": "fixed", "weights": {t: float(final[f"w_{t}"]) for t in spec.tasks}}
