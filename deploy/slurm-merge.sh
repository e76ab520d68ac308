#!/bin/bash
# Merge the shards of deploy/slurm-array.sh: rewrites OUT/manifest.jsonl and
# OUT/.crawler/last.json from every shard's latest run. Submitted by `bash
# deploy/slurm-array.sh` to start after every task of the array has ended; on its own:
#
#   sbatch deploy/slurm-merge.sh
#
# Exit code, in crawl-merge-<jobid>.log and sacct:
#   0, 1  merged (1: some requests failed, as in a plain run)
#   5     some shards are missing, unfinished or still running; the log names them as
#         K-of-N. Rerun those tasks (see deploy/slurm-array.sh), then this job.
#   2     no shard folders under OUT/shards, or SHARDS is wrong
#   3     another crawler process holds OUT itself (another merge)
#
#SBATCH --job-name=crawl-merge
#SBATCH --cpus-per-task=1
#SBATCH --mem=1G
#SBATCH --time=02:00:00
#SBATCH --output=crawl-merge-%j.log

set -u

OUT=${OUT:-/shared/out}
SHARDS=${SHARDS:-8}

exec crawler merge "$OUT" --shards "$SHARDS"
