#!/usr/bin/env bash
# Stop the single-node SLURM daemons started by scripts/slurm/start.sh (and munged, unless --slurm-only).
# Idempotent; leaves packages, munge key, slurm.conf and job state in place, so start.sh is fast next time.
set -euo pipefail

[[ $(id -u) -eq 0 ]] || { echo "[slurm-stop] ERROR: must run as root" >&2; exit 1; }

stop_pidfile() {  # name pidfile: SIGTERM, wait up to 15 s, then SIGKILL
    local name=$1 pidfile=$2 pid
    [[ -s $pidfile ]] || return 0
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
        echo "[slurm-stop] stopping $name (pid $pid)"
        kill -TERM "$pid"
        for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    fi
    rm -f "$pidfile"
}

stop_pidfile slurmd /run/slurm/slurmd.pid
stop_pidfile slurmctld /run/slurm/slurmctld.pid
[[ ${1:-} == --slurm-only ]] || stop_pidfile munged /run/munge/munged.pid
