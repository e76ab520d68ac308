#!/bin/bash
# Run a job file as N shards with GNU parallel, on this machine or on several (--sshlogin),
# then merge them. Run it again with the same settings to resume: it reruns only the shards
# that did not finish, then merges. On one machine alone, `crawler run JOB --workers N` does
# the same without GNU parallel.
#
#   deploy/gnu-parallel.sh                                  # job.yaml, 8 shards, into out/
#   N=16 JOB=nightly.yaml OUT=/shared/crawl deploy/gnu-parallel.sh
#   SSHLOGIN=8/node1,8/node2,8/: deploy/gnu-parallel.sh     # 8 shards each on node1, node2, here
#
# Settings (environment variables):
#   N         number of shards (default 8). Keep it for the whole crawl: the shard folders
#             are OUT/shards/K-of-N, and the joblog below is per N.
#   JOB, OUT  job file and output folder (default job.yaml and out). Paths without spaces or
#             quotes.
#   JOBS      shards run at once per machine (default N)
#   SSHLOGIN  machines for parallel's --sshlogin, e.g. 8/node1,8/node2,: (":" is this one).
#             Every machine must see JOB and OUT at the same path as here (a shared folder
#             where flock(2) works across machines, e.g. NFS or CephFS), and have crawler
#             on the PATH of a non-interactive ssh login, whose shell must be a POSIX one
#             (bash, dash, zsh), not csh or fish.
#   JOBLOG    parallel's joblog (default OUT.parallel-N.joblog, beside OUT). Delete it to
#             start a new crawl rather than resume this one.
#
# Exit code: crawler merge's. 0 or 1: every shard finished and OUT/manifest.jsonl and
# OUT/.crawler/last.json hold them all (1: some requests failed, as in a plain run).
# 5: some shards did not finish (merge names them on stderr); run this script again.
# 2: the job file is invalid; fix it, then run this script again.
#
# Each shard uses the job file's `concurrency` whole: N shards on one machine make N times
# as many requests in flight. Add `-c` to the crawler command below to give each less.

set -u

N=${N:-8}
JOB=${JOB:-job.yaml}
OUT=${OUT:-out}
JOBS=${JOBS:-$N}
JOBLOG=${JOBLOG:-${OUT%/}.parallel-$N.joblog}

command -v parallel >/dev/null || { echo "$0: GNU parallel is not installed" >&2; exit 2; }
command -v crawler >/dev/null || { echo "$0: crawler is not on the PATH" >&2; exit 2; }
mkdir -p "$(dirname "$JOBLOG")" || exit 4

remote=()
if [ -n "${SSHLOGIN:-}" ]; then
    # --workdir: run in this folder on every machine, so relative JOB and OUT mean the same.
    remote=(--sshlogin "$SSHLOGIN" --workdir "$PWD")
fi

# Exit 1 means the shard finished with some failed requests: nothing to retry (running a
# finished shard again would start a new run of it, fetching everything again), so it is
# recorded as 0 in the joblog. Every other non-zero code is retried by --resume-failed:
# 3 (another process holds that shard's folder), 4 (local problem), 130/143 (interrupted),
# and 2 (invalid job file) once you have fixed the file.
#
# --resume-failed: run the shards that failed or never ran according to the joblog; the
# first time, with no joblog yet, run them all. --term-seq: on Ctrl-C or a TERM to parallel,
# give each shard 15 s to finish its requests in flight and save its state (parallel's
# default kills it after 0.4 s; that is safe, the shard resumes, but loses those requests).
parallel -j "$JOBS" --halt never --joblog "$JOBLOG" --resume-failed \
    --term-seq TERM,15000,KILL,25 --tag --line-buffer ${remote[@]+"${remote[@]}"} \
    "crawler run '$JOB' --shard {}/$N -o '$OUT'; c=\$?; exit \$(( c == 1 ? 0 : c ))" \
    ::: $(seq 0 $((N - 1)))
echo "$0: parallel exited $?; merging" >&2

# Merge exits 5, naming the shards as K-of-N, while any is missing or unfinished; then run
# this script again (it reruns only those). OUT is the merge's own folder, so with
# SSHLOGIN it is read here, through the shared folder.
exec crawler merge "$OUT" --shards "$N"
