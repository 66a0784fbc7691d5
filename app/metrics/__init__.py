"""Metrics: the trainer's CSVs (train.csv, val.csv, test.csv) into the metric tables.

- `ingest_train_outputs` / `ingest_eval_outputs`: at completion, inside the caller's
  transaction, a job's files become exactly its rows (app/metrics/ingest.py);
- `ingest_live`: while a TRAIN job runs, new rows are appended (app/metrics/live.py);
- `metric_summary` / `metric_summaries` (list pages): min / max / last of every metric
  with their epochs (summary.py);
- the chart series behind /api/models/<uuid>/metrics (series.py, app/api/metrics.py).

File format and error rules: app/metrics/csvfile.py. Table shape: app/db/models.py.
"""

from app.metrics.errors import MetricsError
from app.metrics.ingest import ingest_eval_outputs, ingest_train_outputs
from app.metrics.live import ingest_live
from app.metrics.summary import metric_summaries, metric_summary

__all__ = [
    "MetricsError",
    "ingest_eval_outputs",
    "ingest_live",
    "ingest_train_outputs",
    "metric_summaries",
    "metric_summary",
]
