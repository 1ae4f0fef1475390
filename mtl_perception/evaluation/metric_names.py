"""Names of the reported metrics, without torch: the command line and reports import them at start-up."""
from __future__ import annotations

#: The metric-depth scores (metres), in the order reports show them.
DEPTH_METRICS = ("depth_abs_rel", "depth_rmse_m", "delta1")
#: Metric names that are better when lower (everything else, e.g. ``miou``, is better higher).
LOWER_IS_BETTER = frozenset({"instance_err_px", "disparity_err_px", "disparity_rmse_px", "depth_abs_rel", "depth_rmse_m"})
