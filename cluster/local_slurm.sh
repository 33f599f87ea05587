#!/usr/bin/env bash
# A real Slurm on this machine, for tests and for trying the Slurm executor: munge, slurmctld and
# three slurmd from Debian's packages (slurm-wlm's slurmctld, slurmd, slurm-client; munge), on
# 127.0.0.1 with non-default ports, state and logs under one directory. No accounting (sacct has
# nothing: the executor must cope), EnforcePartLimits=ALL (sbatch refuses what a partition does
# not allow), and the rules of a shared site:
#   local  (default)  this machine's node, its CPUs and memory, no time limit; a name nothing may
#                     assume
#   short             the same node, MaxTime=2 (minutes)
#   multi             two nodes n1 and n2 (1 CPU each), a slurmd each on its own port; their names
#                     resolve nowhere (NodeAddr=127.0.0.1), as on a cluster without DNS for them
#
#   cluster/local_slurm.sh start [DIR]   starts it (seconds) and prints the environment to use:
#                                       eval "$(cluster/local_slurm.sh start)"
#   cluster/local_slurm.sh env [DIR]     prints that environment again
#   cluster/local_slurm.sh stop [DIR]    stops the daemons and removes DIR
# DIR defaults to $UPCYCLE_SLURM_DIR or /tmp/upcycle-slurm. Ports: $UPCYCLE_SLURM_PORT (controller)
# and the next three (the slurmds), default 16817.
#   cluster/local_slurm.sh stop-controller [DIR] | start-controller [DIR]
#                                       stops or starts slurmctld alone (its state is kept): a
#                                       controller that goes away while jobs run
set -euo pipefail

cmd="${1:-}"
DIR="${2:-${UPCYCLE_SLURM_DIR:-/tmp/upcycle-slurm}}"
PORT="${UPCYCLE_SLURM_PORT:-16817}"
NODE="$(hostname -s)"

die() { echo "local_slurm: $*" >&2; exit 1; }

print_env() {
  echo "export SLURM_CONF='$DIR/slurm.conf'"
}

stop() {
  for p in slurmd-"$NODE" slurmd-n1 slurmd-n2 slurmctld munged; do
    if [ -f "$DIR/$p.pid" ]; then
      pid="$(cat "$DIR/$p.pid" 2>/dev/null || true)"
      if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
      fi
    fi
  done
  rm -rf "$DIR"
}

write_conf() {
  local cpus mem
  cpus="$(nproc)"
  mem="$(awk '/MemTotal/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)"
  cat > "$DIR/slurm.conf" <<CONF
ClusterName=upcycle-local
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=$(id -un)
SlurmdUser=$(id -un)
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd-%n.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
JobRequeue=1
KillWait=30
MinJobAge=600
SchedulerParameters=defer_batch
EnforcePartLimits=ALL
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
NodeName=n1 NodeAddr=127.0.0.1 Port=$((PORT + 2)) CPUs=1 RealMemory=1000 State=UNKNOWN
NodeName=n2 NodeAddr=127.0.0.1 Port=$((PORT + 3)) CPUs=1 RealMemory=1000 State=UNKNOWN
PartitionName=local Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=short Nodes=$NODE MaxTime=2 State=UP
PartitionName=multi Nodes=n1,n2 MaxTime=INFINITE State=UP
CONF
}

start() {
  if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    # Not an error: tests that need the cluster skip when it is not there (scripts/setup.sh installs it).
    echo "local_slurm: slurmctld, slurmd or munged not installed (apt-get install slurmctld slurmd slurm-client munge); not started" >&2
    return 0
  fi
  [ -e "$DIR/slurmctld.pid" ] && stop
  mkdir -p "$DIR"/{munge,state,spool,log}
  chmod 700 "$DIR/munge"
  dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
  chmod 400 "$DIR/munge/munge.key"
  munged --force --key-file="$DIR/munge/munge.key" --socket="$DIR/munge/munge.socket" \
    --pid-file="$DIR/munged.pid" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munge.seed" ||
    die "munged did not start (see $DIR/log/munged.log)"
  write_conf
  export SLURM_CONF="$DIR/slurm.conf"
  slurmctld -i || die "slurmctld did not start (see $DIR/log/slurmctld.log)"
  for n in "$NODE" n1 n2; do
    slurmd -N "$n" || die "slurmd $n did not start (see $DIR/log/slurmd-$n.log)"
  done
  wait_for_nodes "the nodes did not come up within 30 s"
  print_env
}

# Until the controller answers and all three nodes are up and responding ("idle*" is not).
wait_for_nodes() {
  for _ in $(seq 300); do
    if [ "$(SLURM_CONF="$DIR/slurm.conf" sinfo -h -N -o '%N %T' 2>/dev/null |
      grep -cE ' (idle|mixed|allocated)$')" -ge 3 ]; then
      return 0
    fi
    sleep 0.1
  done
  die "$1: $(SLURM_CONF="$DIR/slurm.conf" sinfo -N 2>&1 | tail -3); see $DIR/log"
}

stop_controller() {
  local pid
  pid="$(cat "$DIR/slurmctld.pid" 2>/dev/null || true)"
  [ -n "$pid" ] || die "no slurmctld.pid in $DIR"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  die "slurmctld ($pid) did not stop within 10 s"
}

start_controller() {
  SLURM_CONF="$DIR/slurm.conf" slurmctld || die "slurmctld did not start (see $DIR/log/slurmctld.log)"
  wait_for_nodes "slurmctld or its nodes did not come back within 30 s (see $DIR/log)"
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  env) print_env ;;
  stop-controller) stop_controller ;;
  start-controller) start_controller ;;
  *) die "usage: local_slurm.sh start|stop|env|stop-controller|start-controller [DIR]" ;;
esac
