#!/usr/bin/env bash
# Slurm 22.05 ("as Debian bookworm ships it") end-to-end throughput of trivial jobs on one machine,
# the side-by-side figure for allot's trivial-jobs benchmark (src/agent/trivial_jobs_benchmark.cc,
# docs/performance.md): one node with 8 slots, N jobs that each run `true` on one slot, timed from
# the first submission until every job has finished.
#
# Usage: bench/slurm/trivial_jobs.sh [--jobs N] [--submitters K] [--tuned] [--epilog] [--slots S] [--keep]
#   --jobs N        jobs to submit (default 1000)
#   --submitters K  parallel sbatch loops (default 8, like the 8 client threads of allot's benchmark;
#                   1 submits strictly sequentially)
#   --tuned         add SchedulerParameters=batch_sched_delay=0 (see the header); default: Slurm's defaults
#   --epilog        add Epilog=/bin/true (see the header)
#   --slots S       the node's CPUs, one job each (default 8, as allot's 8 GPUs)
#   --keep          keep the scratch directory (config, daemon logs) for inspection
#
# Runs as root. Installs the Debian packages if slurmctld is missing. Starts munged, slurmctld and
# slurmd directly (no systemd), with all their config, keys, sockets, state and logs in a private
# scratch directory; nothing under /etc is changed. Stops the daemons and removes the scratch
# directory on exit.
#
# Output, one line:
#   slurm 22.05: N trivial jobs (8 slots) submitted in X.XX s, all completed after Y.YY s: Z.Z jobs/s end to end (F failed)
# ("slurm 22.05 tuned (batch_sched_delay=0): ..." with --tuned). Exits non-zero if anything fails,
# including any job ending in a state other than COMPLETED (the line is still printed then).
#
# What bounds Slurm here: with the defaults, slurmctld starts batch jobs freed by completions only
# every batch_sched_delay (SchedulerParameters, default 3 s), so the 8 slots refill in waves about
# 3 s apart (about 2.7 jobs/s whatever the job does). --tuned sets batch_sched_delay=0, Slurm's
# documented knob for high-throughput batch submission; waves are then about 1 s apart.
# --epilog sets Epilog=/bin/true: with an epilog configured, slurmd reports each job's end to
# slurmctld as soon as the epilog has run, and slurmctld schedules the freed slot at once, so the
# slots refill job by job instead of in timed waves. This is how a site that cares about throughput
# of short jobs runs Slurm (an epilog is common anyway), and the fair point of comparison.
set -euo pipefail

JOBS=1000
SUBMITTERS=8
KEEP=0
TUNED=0
EPILOG=0
SLOTS=8

die() { echo "trivial_jobs.sh: error: $*" >&2; exit 1; }
usage() { sed -n '7,12p' "$0" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --jobs) [[ $# -ge 2 ]] || die "--jobs needs a value"; JOBS="$2"; shift 2 ;;
    --jobs=*) JOBS="${1#--jobs=}"; shift ;;
    --submitters) [[ $# -ge 2 ]] || die "--submitters needs a value"; SUBMITTERS="$2"; shift 2 ;;
    --submitters=*) SUBMITTERS="${1#--submitters=}"; shift ;;
    --keep) KEEP=1; shift ;;
    --tuned) TUNED=1; shift ;;
    --epilog) EPILOG=1; shift ;;
    --slots) [[ $# -ge 2 ]] || die "--slots needs a value"; SLOTS="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
[[ "$JOBS" =~ ^[1-9][0-9]*$ ]] || die "--jobs must be a positive integer, got '$JOBS'"
[[ "$SLOTS" =~ ^[1-9][0-9]*$ ]] || die "--slots must be a positive integer, got '$SLOTS'"
[[ "$SUBMITTERS" =~ ^[1-9][0-9]*$ ]] || die "--submitters must be a positive integer, got '$SUBMITTERS'"
[[ "$(id -u)" -eq 0 ]] || die "must run as root (it starts munged, slurmctld and slurmd)"

# --- packages -----------------------------------------------------------------------------------
# Debian installs the daemons under /usr/sbin, which a non-login root shell may not have in PATH.
export PATH="$PATH:/usr/sbin:/sbin"
# join and sort below must agree on the collation.
export LC_ALL=C
if ! command -v slurmctld >/dev/null 2>&1; then
  echo "installing slurm and munge from the Debian archive..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2 || die "apt-get update failed"
  apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge >&2 \
    || die "apt-get install of slurmctld slurmd slurm-client munge failed"
fi
for tool in slurmctld slurmd munged sbatch squeue sinfo scontrol; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found after installing the packages"
done
SLURM_VERSION="$(slurmctld -V 2>/dev/null | awk '{print $2}')"
case "$SLURM_VERSION" in
  22.05.*) ;;
  *) echo "trivial_jobs.sh: warning: expected Slurm 22.05, found '$SLURM_VERSION'" >&2 ;;
esac

# --- scratch directory and cleanup --------------------------------------------------------------
# A short path under /tmp: the munge socket path must fit in sun_path (108 bytes).
DIR="$(mktemp -d /tmp/slurm-bench.XXXXXX)" || die "mktemp -d failed"
chmod 0700 "$DIR"
MUNGED_PID=""
CTLD_PID=""
SLURMD_PID=""

stop_pid() {  # stop_pid PID: TERM, wait up to 10 s, then KILL
  local pid="$1"
  [[ -n "$pid" ]] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  set +e
  # Stop any submitter loops still running (e.g. after a failed sbatch).
  local p
  for p in $(jobs -p); do kill "$p" 2>/dev/null; done
  # After a failure jobs may still be running, and their slurmstepd processes outlive slurmd: cancel
  # them through our private controller (SLURM_CONF points at it, so nothing else is touched) and
  # give the steps a moment to end.
  if [[ "$rc" -ne 0 && -n "$CTLD_PID" ]] && kill -0 "$CTLD_PID" 2>/dev/null; then
    timeout 10 scancel --quiet --user=root >/dev/null 2>&1
    sleep 1
  fi
  # slurmd first, then the controller, then munge, which both slurm daemons use while shutting down.
  stop_pid "$SLURMD_PID"
  stop_pid "$CTLD_PID"
  stop_pid "$MUNGED_PID"
  if [[ "$KEEP" -eq 1 ]]; then
    echo "trivial_jobs.sh: kept scratch directory $DIR" >&2
  else
    rm -rf "$DIR"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

show_logs() {  # print the tails of the daemon logs, for failures
  local d f
  for d in munged slurmctld slurmd; do
    # The daemons' stdout/stderr (.out) repeats their log file under -D; it matters only when the
    # daemon died before opening its log file.
    f="$DIR/log/$d.log"
    [[ -s "$f" ]] || f="$DIR/log/$d.out"
    [[ -s "$f" ]] || continue
    echo "----- tail of $f -----" >&2
    tail -n 20 "$f" >&2
  done
}
fail() { echo "trivial_jobs.sh: error: $*" >&2; show_logs; exit 1; }

mkdir -p "$DIR"/log "$DIR"/munge "$DIR"/state "$DIR"/spool "$DIR"/run

# --- free ports ---------------------------------------------------------------------------------
# Read /proc/net/tcp{,6} rather than relying on ss/netstat, which a minimal image may lack.
port_in_use() {
  local hex
  hex="$(printf '%04X' "$1")"
  cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk -v p=":$hex" 'NR>1 && substr($2, length($2)-4) == p {f=1} END {exit !f}'
}
pick_port() {  # pick_port EXCLUDE: a free port in 20000-59999, not EXCLUDE
  local port
  for _ in $(seq 1 200); do
    port=$(( 20000 + RANDOM % 40000 ))
    [[ "$port" != "${1:-}" ]] || continue
    port_in_use "$port" || { echo "$port"; return 0; }
  done
  return 1
}
CTLD_PORT="$(pick_port)" || fail "no free port for slurmctld"
SLURMD_PORT="$(pick_port "$CTLD_PORT")" || fail "no free port for slurmd"

# --- munge --------------------------------------------------------------------------------------
# A fresh key for this run only; munged runs as root here (the benchmark does not need the munge
# user), and --force lets it start despite running as root / a key owned by root.
MUNGE_KEY="$DIR/munge/munge.key"
MUNGE_SOCKET="$DIR/munge/munge.socket"
if command -v mungekey >/dev/null 2>&1; then
  mungekey --create --keyfile="$MUNGE_KEY" >/dev/null 2>&1 || fail "mungekey --create failed"
else
  dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none || fail "could not write a munge key"
fi
chmod 0400 "$MUNGE_KEY"
# munged wants the socket's directories searchable by all and warns otherwise; the scratch
# directory stays 0700 (so munged logs a harmless "Socket is inaccessible" warning): every munge
# client here (slurmctld, slurmd, the client commands, the jobs) runs as root.
chmod 0711 "$DIR/munge"
munged --force \
  --key-file="$MUNGE_KEY" \
  --socket="$MUNGE_SOCKET" \
  --pid-file="$DIR/munge/munged.pid" \
  --log-file="$DIR/log/munged.log" \
  --seed-file="$DIR/munge/munged.seed" \
  || fail "munged did not start"
for _ in $(seq 1 50); do [[ -s "$DIR/munge/munged.pid" ]] && break; sleep 0.1; done
MUNGED_PID="$(cat "$DIR/munge/munged.pid" 2>/dev/null || true)"
if [[ -z "$MUNGED_PID" ]] || ! kill -0 "$MUNGED_PID" 2>/dev/null; then fail "munged is not running"; fi
if command -v munge >/dev/null 2>&1; then
  munge --socket="$MUNGE_SOCKET" -n | unmunge --socket="$MUNGE_SOCKET" >/dev/null 2>&1 \
    || fail "munge round trip through $MUNGE_SOCKET failed"
fi

# --- slurm.conf ---------------------------------------------------------------------------------
HOST="$(hostname -s)"
NODE="bench1"   # slurmd is started with -N, so the node name need not be the hostname
export SLURM_CONF="$DIR/slurm.conf"
# The benchmark counts finished jobs with squeue, which shows a job only while slurmctld holds its
# record: MinJobAge (default 300 s) after it ends, and no more than MaxJobCount (default 10000)
# records. With defaults Slurm runs about 2.7 jobs/s here, so 1000 jobs take about 350 s and the
# first ones would be purged before the last ones end. Hence MinJobAge outlasts the longest run we
# wait for (WAIT_LIMIT), and MaxJobCount is raised only when N needs it. Neither changes how jobs are
# scheduled or run: in a default run shorter than 300 s Slurm holds exactly the same records.
WAIT_LIMIT=$(( 600 + JOBS ))   # seconds; see the wait loop below
MIN_JOB_AGE=$(( 2 * WAIT_LIMIT ))
MAX_JOB_COUNT=10000
if (( JOBS + 100 > MAX_JOB_COUNT )); then MAX_JOB_COUNT=$(( JOBS + 1000 )); fi
cat > "$SLURM_CONF" <<CONF
# Generated by bench/slurm/trivial_jobs.sh: a one-node cluster on this machine, Slurm's defaults
# except for what is needed to run in a scratch directory without systemd. Nothing here is tuned
# for throughput.
ClusterName=allotbench
SlurmctldHost=${HOST}(127.0.0.1)
SlurmctldPort=${CTLD_PORT}
SlurmdPort=${SLURMD_PORT}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# Our private munged, not the system one.
AuthInfo=socket=${MUNGE_SOCKET}
StateSaveLocation=${DIR}/state
SlurmdSpoolDir=${DIR}/spool
SlurmctldPidFile=${DIR}/run/slurmctld.pid
SlurmdPidFile=${DIR}/run/slurmd.pid
SlurmctldLogFile=${DIR}/log/slurmctld.log
SlurmdLogFile=${DIR}/log/slurmd.log
# No plugstack (spank) plugins from /etc/slurm.
PlugStackConfig=${DIR}/plugstack.conf
# No cgroups: CI machines run without systemd and may have no writable cgroup tree.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SwitchType=switch/none
# No slurmdbd: no accounting, no job completion log.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
# One CPU per job, so the node's 8 CPUs are the 8 slots (allot's benchmark: 8 GPUs, 1 per job).
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
# The node brings itself up when slurmd registers.
ReturnToService=2
# Keep completed jobs visible to squeue for the whole run (default MinJobAge=300, MaxJobCount=10000);
# record keeping only, see the script.
MinJobAge=${MIN_JOB_AGE}
MaxJobCount=${MAX_JOB_COUNT}
# The machine may have fewer than 8 cores: take the node's CPUs from this file, not the hardware.
SlurmdParameters=config_overrides
NodeName=${NODE} NodeHostname=${HOST} NodeAddr=127.0.0.1 CPUs=${SLOTS} State=UNKNOWN
PartitionName=bench Nodes=${NODE} Default=YES MaxTime=INFINITE State=UP
CONF
: > "$DIR/plugstack.conf"
LABEL="slurm 22.05"
if (( TUNED )); then
  # The one throughput setting, only with --tuned: start batch jobs as soon as slots free up instead
  # of at most every 3 s (default batch_sched_delay=3).
  printf '%s\n' '# --tuned: the only setting changed for throughput.' \
    'SchedulerParameters=batch_sched_delay=0' >> "$SLURM_CONF"
  LABEL="slurm 22.05 tuned (batch_sched_delay=0)"
fi
if (( EPILOG )); then
  printf '%s\n' '# --epilog: end reports at once, so freed slots refill job by job.' 'Epilog=/bin/true' >> "$SLURM_CONF"
  if (( TUNED )); then LABEL="slurm 22.05 Epilog=/bin/true, batch_sched_delay=0"; else LABEL="slurm 22.05 Epilog=/bin/true"; fi
fi

# --- daemons ------------------------------------------------------------------------------------
# -D keeps them in the foreground as our children, so we hold their pids; -i ignores any stale
# state (there is none in a fresh StateSaveLocation, but it keeps slurmctld from asking).
slurmctld -D -i -f "$SLURM_CONF" >"$DIR/log/slurmctld.out" 2>&1 &
CTLD_PID=$!
slurmd -D -N "$NODE" -f "$SLURM_CONF" >"$DIR/log/slurmd.out" 2>&1 &
SLURMD_PID=$!

# Wait for the node to be idle (slurmd registered, the controller accepted it).
deadline=$(( SECONDS + 60 ))
state=""
while :; do
  kill -0 "$CTLD_PID" 2>/dev/null || fail "slurmctld exited during start-up"
  kill -0 "$SLURMD_PID" 2>/dev/null || fail "slurmd exited during start-up"
  state="$(sinfo -h -n "$NODE" -o '%T' 2>/dev/null | head -n1 || true)"
  [[ "$state" == "idle" ]] && break
  (( SECONDS < deadline )) || fail "node $NODE not idle after 60 s (sinfo state: '${state:-no answer}')"
  sleep 0.5
done
cpus="$(sinfo -h -n "$NODE" -o '%c' | head -n1)"
[[ "$cpus" == "$SLOTS" ]] || fail "node $NODE has $cpus CPUs, expected $SLOTS"

# --- measurement --------------------------------------------------------------------------------
now() { date +%s.%N; }

# Each submitter submits its share of the N jobs one after another; sbatch returns once slurmctld
# has accepted (and recorded) the job. A failing sbatch fails the submitter and the benchmark.
submit_loop() {  # submit_loop INDEX COUNT
  local idx="$1" count="$2" k id
  for (( k = 0; k < count; k++ )); do
    id="$(sbatch --parsable --wrap true -o /dev/null -e /dev/null -n1 -c1 --time=1 -J trivial 2>>"$DIR/log/sbatch-$idx.err")" \
      || { echo "sbatch failed in submitter $idx after $k jobs" >>"$DIR/log/sbatch-$idx.err"; return 1; }
    echo "${id%%;*}" >>"$DIR/ids-$idx"
  done
}

per=$(( JOBS / SUBMITTERS ))
extra=$(( JOBS % SUBMITTERS ))
pids=()
t_start="$(now)"
for (( s = 0; s < SUBMITTERS; s++ )); do
  n=$(( per + (s < extra ? 1 : 0) ))
  (( n > 0 )) || continue
  submit_loop "$s" "$n" &
  pids+=("$!")
done
submit_failed=0
for p in "${pids[@]}"; do wait "$p" || submit_failed=1; done
t_submitted="$(now)"
if (( submit_failed )); then
  cat "$DIR"/log/sbatch-*.err >&2 2>/dev/null || true
  fail "sbatch failed"
fi
submitted="$(cat "$DIR"/ids-* | wc -l)"
(( submitted == JOBS )) || fail "submitted $submitted job ids, expected $JOBS"

# Poll until every job is in a final state. squeue -t all lists jobs in every state, completed ones
# included while MinJobAge keeps them. A job is finished when its state is final: COMPLETED, or a
# failure state. COMPLETING (the job's processes ended but the node is still cleaning up) is not
# final: its slot is not free yet. Polling every 0.2 s bounds the end-time error to about 0.2 s
# while keeping the poller's own load (one squeue, one awk) small on a 2-core machine.
# Generous bound: Slurm runs well over 1 job/s here; 10 minutes plus 1 s per job.
wait_deadline=$(( SECONDS + WAIT_LIMIT ))
while :; do
  counts="$(squeue -h -t all -o '%T' 2>/dev/null | awk '
    { total++ }
    /^(COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|PREEMPTED|BOOT_FAIL|DEADLINE|OUT_OF_MEMORY)$/ { final++ }
    END { print total + 0, final + 0 }')" || { sleep 0.2; continue; }
  read -r total final <<<"$counts"
  if (( final == JOBS )); then
    t_end="$(now)"
    break
  fi
  if (( total < JOBS )); then
    fail "squeue shows only $total of $JOBS jobs: completed jobs were purged (MinJobAge=$MIN_JOB_AGE s) before all finished"
  fi
  if (( SECONDS > wait_deadline )); then
    fail "jobs not all finished after $WAIT_LIMIT s: $final of $JOBS in a final state"
  fi
  sleep 0.2
done

# Count outcomes, only among the job ids we submitted.
# join needs both inputs sorted as text (not numerically) on the job id.
sort "$DIR"/ids-* > "$DIR/ids"
squeue -h -t all -o '%i %T' | sort > "$DIR/states"
completed="$(join "$DIR/ids" "$DIR/states" | awk '$2 == "COMPLETED"' | wc -l)"
failed="$(join "$DIR/ids" "$DIR/states" | awk '$2 != "COMPLETED"' | wc -l)"
seen=$(( completed + failed ))
(( seen == JOBS )) || fail "found the final state of $seen of $JOBS submitted jobs"

awk -v label="$LABEL" -v n="$JOBS" -v slots="$SLOTS" -v ts="$t_start" -v tsub="$t_submitted" -v te="$t_end" -v f="$failed" 'BEGIN {
  sub_s = tsub - ts; all_s = te - ts
  printf "%s: %d trivial jobs (%d slots) submitted in %.2f s, all completed after %.2f s: %.1f jobs/s end to end (%d failed)\n", label, n, slots, sub_s, all_s, n / all_s, f
}'
if (( failed > 0 )); then
  echo "trivial_jobs.sh: $failed jobs did not complete successfully:" >&2
  join "$DIR/ids" "$DIR/states" | awk '$2 != "COMPLETED" {print "  job " $1 ": " $2}' | head -n 20 >&2
  exit 1
fi
