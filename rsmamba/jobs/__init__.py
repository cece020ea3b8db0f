"""Many scenes per command: plan jobs from paths, globs and lists, run them here or on Dask.

Each input becomes one job writing one output in the output folder (complete outputs are
skipped, so re-runs are idempotent). Jobs run in-process, on a :class:`dask.distributed.LocalCluster`
(``scheduler="local"``) or on an existing scheduler (its address); ``shard="i/n"`` picks a
disjoint share for schedulers outside Dask (Slurm arrays, Kubernetes indexed jobs). This package
knows nothing of what a job computes: ``predict`` and ``change`` hand it their one-scene function.

- :mod:`rsmamba.jobs.plan`: inputs -> jobs (expansion, naming, pairing, sharding);
- :mod:`rsmamba.jobs.run`: jobs -> results (local loop or Dask, retries, every failure reported);
- :mod:`rsmamba.jobs.worker`: what a job sets up on its worker (threads, GPU, a cached model).
"""

from rsmamba.jobs.plan import (
    Job, check_templates, expand_inputs, is_batch, is_pattern, is_template, pair_inputs, plan_jobs, plan_pair_jobs,
    resolve_template, select_shard,
)
from rsmamba.jobs.run import (
    JobResult, JobsFailed, batch_folder_of, batch_record_in, keyword_defaults, run_jobs, run_many,
)
from rsmamba.jobs.worker import band_count, cached_model, default_workers, first_band_count, setup_worker

__all__ = [
    "Job", "JobResult", "JobsFailed", "band_count", "batch_folder_of", "batch_record_in", "cached_model",
    "check_templates", "default_workers", "expand_inputs", "first_band_count", "is_batch", "keyword_defaults",
    "is_pattern", "is_template", "pair_inputs", "plan_jobs", "plan_pair_jobs", "resolve_template", "run_jobs", "run_many",
    "select_shard", "setup_worker",
]
