#!/usr/bin/env bash
# Start a single-node SLURM cluster (munged + slurmctld + slurmd) on this machine, as root.
#
#   sudo scripts/slurm/start.sh          # idempotent: installs, configures and starts only what is missing
#   scripts/slurm/stop.sh                # stops the daemons again
#
# Installs Debian's slurm-wlm and munge when missing (one `apt-get update` first if the package lists lack
# them), creates /etc/munge/munge.key when missing, writes /etc/slurm/slurm.conf from slurm.conf.template
# with this machine's CPUs and memory (from `slurmd -C`), installs the sacct stand-in (scripts/slurm/sacct:
# no slurmdbd here), starts the daemons without systemd and waits until
# `sinfo` reports the node idle. Environment: SLURM_START_TIMEOUT (seconds to wait for the node, default 60).
# Exit status: 0 ready, 1 error (message says which log to read), 3 packages could not be installed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
timeout_s="${SLURM_START_TIMEOUT:-60}"
conf=/etc/slurm/slurm.conf
t0=$SECONDS

log() { printf '[slurm-start +%3ds] %s\n' "$((SECONDS - t0))" "$*"; }
die() { printf '[slurm-start] ERROR: %s\n' "$*" >&2; exit 1; }
# Exit status 3 = packages could not be installed (no registry access): tests skip instead of failing.
die_pkg() { printf '[slurm-start] ERROR: %s\n' "$*" >&2; exit 3; }

[[ $(id -u) -eq 0 ]] || die "must run as root (apt-get, /etc/slurm and the daemons need it)"

# Concurrent callers (two test sessions, say) serialise here instead of racing apt and the daemons.
# Each daemon is started with `9>&-`: a daemon that inherited fd 9 would hold this lock for its lifetime.
exec 9>/run/peftbench-slurm-start.lock
flock -w 300 9 || die "another start.sh holds /run/peftbench-slurm-start.lock for over 300 s"

# 1. Packages ---------------------------------------------------------------------------------------------
missing=()
command -v munged >/dev/null || missing+=(munge)
for bin in slurmctld slurmd sinfo; do command -v "$bin" >/dev/null || { missing+=(slurm-wlm); break; }; done
if ((${#missing[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt=(apt-get -o DPkg::Lock::Timeout=300 -q)
    if ! apt-cache show slurm-wlm munge >/dev/null 2>&1; then
        log "apt-get update (package lists lack slurm-wlm/munge)"
        "${apt[@]}" update >/dev/null || die_pkg "apt-get update failed"
    fi
    log "installing ${missing[*]}"
    "${apt[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null \
        || die_pkg "apt-get install ${missing[*]} failed"
    log "installed: $(dpkg-query -W -f='${Package} ${Version}; ' slurmctld slurmd munge)"
fi

# 2. Munge key and daemon --------------------------------------------------------------------------------
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge
install -d -o munge -g munge -m 0711 /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating /etc/munge/munge.key"
    if command -v mungekey >/dev/null; then
        mungekey --create --keyfile=/etc/munge/munge.key --force
    else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key

if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "starting munged"
    rm -f /run/munge/munged.pid
    # munged refuses to run as root unless forced; the munge user owns its key and socket.
    runuser -u munge -- /usr/sbin/munged 9>&- || die "munged failed to start: see /var/log/munge/munged.log"
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
    munge -n | unmunge >/dev/null || die "munge credential round trip fails: see /var/log/munge/munged.log"
fi

# 3. slurm.conf ------------------------------------------------------------------------------------------
install -d -m 0755 /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/slurm
# `slurmd -C` prints e.g. "NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1
# RealMemory=24104"; using its own numbers keeps slurmd from draining the node for a config mismatch.
hw="$(slurmd -C | head -n1)"
field() { sed -n "s/.*\b$1=\([0-9]*\).*/\1/p" <<<"$hw"; }
host="$(hostname -s)"
cpus=$(field CPUs); mem=$(field RealMemory)
[[ -n $cpus && -n $mem ]] || die "cannot parse 'slurmd -C' output: $hw"
addr="$(getent ahostsv4 "$host" | awk 'NR==1 {print $1}')"
addr="${addr:-127.0.0.1}"
new_conf="$(sed -e "s/@HOST@/$host/g" -e "s/@ADDR@/$addr/g" -e "s/@CPUS@/$cpus/g" \
    -e "s/@BOARDS@/$(field Boards)/g" -e "s/@SOCKETS@/$(field SocketsPerBoard)/g" \
    -e "s/@CORES@/$(field CoresPerSocket)/g" -e "s/@THREADS@/$(field ThreadsPerCore)/g" \
    -e "s/@MEM_MB@/$mem/g" -e "s/@DEF_MEM_PER_CPU@/$((mem / cpus))/g" "$here/slurm.conf.template")"

running() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
if [[ ! -f $conf ]] || [[ "$new_conf" != "$(cat "$conf")" ]]; then
    log "writing $conf ($host, $cpus CPUs, $mem MB)"
    printf '%s\n' "$new_conf" >"$conf"
    # Daemons read slurm.conf only at start: restart any that run with an older version.
    if running /run/slurm/slurmctld.pid || running /run/slurm/slurmd.pid; then
        log "config changed: restarting running SLURM daemons"
        "$here/stop.sh" --slurm-only 9>&-
    fi
fi

# submitit polls `sacct`, which needs slurmdbd; this stand-in answers from the job-completion log instead.
if ! cmp -s "$here/sacct" /usr/local/bin/sacct; then
    log "installing the sacct stand-in as /usr/local/bin/sacct (real one: /usr/bin/sacct)"
    install -m 0755 "$here/sacct" /usr/local/bin/sacct
fi

# 4. Daemons (they daemonise themselves when started without -D) ----------------------------------------
if ! running /run/slurm/slurmctld.pid; then
    # Without saved controller state job ids restart at 1: old completion lines would answer for new jobs.
    [[ -e /var/spool/slurmctld/job_state ]] || : >/var/log/slurm/jobcomp.log
    log "starting slurmctld"
    slurmctld 9>&- || die "slurmctld failed to start: see /var/log/slurm/slurmctld.log"
fi
if ! running /run/slurm/slurmd.pid; then
    log "starting slurmd"
    slurmd 9>&- || die "slurmd failed to start: see /var/log/slurm/slurmd.log"
fi

# 5. Wait for the node ------------------------------------------------------------------------------------
state=""
deadline=$((SECONDS + timeout_s))
while ((SECONDS < deadline)); do
    state="$(sinfo -h -n "$host" -o %T 2>/dev/null | head -n1 || true)"
    case "$state" in
        idle | mixed | allocated | completing) break ;;
        drained | draining | down | "down*" | drained* )
            # A stale DOWN/DRAIN from an earlier run (ReturnToService does not clear a manual drain).
            scontrol update NodeName="$host" State=RESUME 2>/dev/null || true ;;
    esac
    sleep 1
done
case "$state" in
    idle | mixed | allocated | completing) ;;
    *) die "node $host not usable after ${timeout_s}s (sinfo state: '${state:-no answer}');" \
        "see /var/log/slurm/slurmctld.log and /var/log/slurm/slurmd.log, and 'scontrol show node $host'" ;;
esac
log "SLURM ready: node $host is $state ($cpus CPUs, $mem MB) in partition debug"
