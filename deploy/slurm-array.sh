#!/bin/bash
# One crawler shard per task of a Slurm job array, then deploy/slurm-merge.sh once every
# task has ended.
#
# Submit both from the folder that holds the job file:
#
#   bash deploy/slurm-array.sh
#
# Outside a job array this script submits itself as the array, then the merge job with a
# dependency on it. The same by hand:
#
#   jobid=$(sbatch --parsable deploy/slurm-array.sh)
#   sbatch --dependency=afterany:${jobid%%;*} deploy/slurm-merge.sh
#
# afterany, not afterok: afterok starts the merge only when every task exited 0, and a shard
# with one failed request exits 1. The merge itself checks that every shard finished, and
# exits 5 naming those that did not.
#
# The array must be contiguous and numbered as the shards: --array=0-7 is shards 0..7 of 8
# (`--shard auto` reads SLURM_ARRAY_TASK_ID minus SLURM_ARRAY_TASK_MIN, and
# SLURM_ARRAY_TASK_COUNT). A stepped (0-14:2) or sparse (1,4,7) array is refused with exit
# 2. A throttle (--array=0-7%4, four at a time) is fine. To change the number of shards,
# change --array here and SHARDS below (the merge job gets it from here).
#
# Exit codes of a task, and what to do:
#   0, 1     the shard finished (1: some requests failed; the merge reports them too).
#   2        the job file or command line is invalid; nothing fetched. Fix it, resubmit.
#   3        another process holds this shard's folder (OUT/shards/K-of-N/.crawler/lock):
#            an earlier copy of the task is still running, e.g. on a node Slurm lost.
#   4        a local problem (disk full, folder not writable); fix it and rerun the task.
#   130/143  interrupted (scancel, time limit, preemption); rerun the task.
# Rerunning a task is always safe: a shard that stopped early resumes where it stopped,
# fetching again at most the requests that were in flight. Do not rerun a shard that
# finished (0 or 1): it would start a new run of that shard and fetch everything again.
#
# Rerunning: `#SBATCH --requeue` below lets Slurm requeue a task by itself after a node
# failure or a preemption. By hand, while Slurm still knows the job:
#   scontrol requeue <jobid>_3           # task 3 again, with the array's variables
# Later, run that shard by name instead (NOT `sbatch --array=3`, which is a one-task array:
# `--shard auto` would read it as shard 0 of 1 and fetch the whole job file):
#   sbatch --cpus-per-task=1 --wrap "crawler run job.yaml --shard 3/8 -o /shared/out"
# then the merge again: sbatch deploy/slurm-merge.sh
#
# OUT must be on a filesystem that every node sees at the same path and on which flock(2)
# works across nodes (NFSv4, CephFS, Lustre mounted with -o flock, ...). On a time limit or
# scancel, Slurm sends SIGTERM and kills after KillWait (30 s by default); crawler needs up
# to 10 s to save.
#
#SBATCH --job-name=crawl
#SBATCH --array=0-7
#SBATCH --cpus-per-task=1
#SBATCH --mem=1G
#SBATCH --time=1-00:00:00
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=crawl-%A_%a.log

set -u

JOB=${JOB:-job.yaml}        # relative to the folder sbatch was run in
OUT=${OUT:-/shared/out}
SHARDS=8                    # the number of tasks of --array above

if [ -z "${SLURM_ARRAY_TASK_ID:-}" ]; then
    # Not a task of the array: submit the array, then the merge after it.
    jobid=$(sbatch --parsable "$0") || exit 4
    jobid=${jobid%%;*}
    mergeid=$(sbatch --parsable --dependency="afterany:$jobid" \
        --export="ALL,OUT=$OUT,SHARDS=$SHARDS" "$(dirname "$0")/slurm-merge.sh") || exit 4
    echo "array job $jobid: $SHARDS shards of $JOB into $OUT; merge job ${mergeid%%;*} after it"
    exit 0
fi

exec crawler run "$JOB" --shard auto -o "$OUT"
