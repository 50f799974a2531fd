#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for the SLURM tests and for trying `make submit`.
#
#   tests/slurm/cluster.sh start    # install slurm-wlm + munge if missing (needs root + apt), start the daemons
#   tests/slurm/cluster.sh stop     # stop the daemons started by `start`
#   tests/slurm/cluster.sh env      # print `export SLURM_CONF=...` for your shell
#
# Everything lives under $LITVISION_SLURM_DIR (default /tmp/litvision-slurm); the clients
# (sbatch, squeue, scontrol) find it through SLURM_CONF, so /etc/slurm is left alone.
# The node is named explicitly (NodeName=litvision, NodeAddr=127.0.0.1): the machine's
# hostname need not resolve.
set -euo pipefail

DIR="${LITVISION_SLURM_DIR:-/tmp/litvision-slurm}"
CONF="$DIR/slurm.conf"
NODE="litvision"
CPUS="${LITVISION_SLURM_CPUS:-2}"

die() { echo "cluster.sh: $*" >&2; exit 1; }

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
        return
    fi
    [ "$(id -u)" = 0 ] || die "slurm-wlm and munge are missing and installing them needs root: run 'apt-get install slurm-wlm munge' as root."
    command -v apt-get >/dev/null || die "slurm-wlm and munge are missing and there is no apt-get: install SLURM (slurmctld, slurmd, munge) by hand."
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends slurm-wlm munge >"$DIR/apt.log" 2>&1 \
        || { apt-get update >>"$DIR/apt.log" 2>&1 && apt-get install -y --no-install-recommends slurm-wlm munge >>"$DIR/apt.log" 2>&1; } \
        || die "apt-get install slurm-wlm munge failed; see $DIR/apt.log."
}

start_munge() {
    if [ -S /run/munge/munge.socket.2 ] && munge -n </dev/null >/dev/null 2>&1; then
        return
    fi
    mkdir -p /run/munge /var/log/munge /var/lib/munge /etc/munge
    if [ ! -s /etc/munge/munge.key ]; then
        if command -v mungekey >/dev/null; then mungekey --create --force >/dev/null; else
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 2>/dev/null; fi
    fi
    chown -R munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge
    chmod 0700 /etc/munge && chmod 0400 /etc/munge/munge.key
    runuser -u munge -- /usr/sbin/munged
    touch "$DIR/munged.started-here"
}

write_conf() {
    local host mem
    host="$(hostname -s)"
    mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))
    mkdir -p "$DIR/state" "$DIR/spool"
    cat >"$CONF" <<CONF
# Written by tests/slurm/cluster.sh: one node, $CPUS CPUs, localhost.
ClusterName=litvision
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=16817
SlurmdPort=16818
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MailProg=/bin/true
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
JobRequeue=1
KillWait=5
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
NodeName=$NODE NodeHostname=$host NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF
}

start() {
    mkdir -p "$DIR"
    install_packages
    start_munge
    stop_daemons quiet
    write_conf
    export SLURM_CONF="$CONF"
    /usr/sbin/slurmctld -c -f "$CONF"
    /usr/sbin/slurmd -c -f "$CONF" -N "$NODE"
    for _ in $(seq 1 40); do
        if timeout 3 sinfo -h -n "$NODE" -o %T 2>/dev/null | grep -Eq '^(idle|mixed|allocated)'; then
            echo "SLURM_CONF=$CONF"
            return
        fi
        # A daemon that exited has logged why; waiting longer would not help.
        for pidfile in "$DIR/slurmctld.pid" "$DIR/slurmd.pid"; do
            [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null || { sleep 0.5; [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; } || break 2
        done
        sleep 0.5
    done
    tail -n 20 "$DIR/slurmctld.log" "$DIR/slurmd.log" >&2 || true
    die "the node did not come up; see $DIR/slurmctld.log and $DIR/slurmd.log."
}

stop_daemons() {
    for pidfile in "$DIR/slurmd.pid" "$DIR/slurmctld.pid"; do
        if [ -s "$pidfile" ]; then
            pid="$(cat "$pidfile")"
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
            rm -f "$pidfile"
        fi
    done
    [ "${1:-}" = quiet ] || true
}

cancel_jobs() {
    # Jobs still running when slurmd stops leave their slurmstepd/srun behind: cancel them first.
    [ -s "$DIR/slurmctld.pid" ] && kill -0 "$(cat "$DIR/slurmctld.pid")" 2>/dev/null || return 0
    export SLURM_CONF="$CONF"
    local jobs
    jobs="$(timeout 5 squeue -h -o %i 2>/dev/null || true)"
    [ -n "$jobs" ] || return 0
    # shellcheck disable=SC2086
    timeout 10 scancel --full $jobs 2>/dev/null || true
    for _ in $(seq 1 30); do
        [ -z "$(timeout 5 squeue -h -o %i 2>/dev/null)" ] && break
        sleep 0.5
    done
}

stop() {
    cancel_jobs
    stop_daemons
    if [ -f "$DIR/munged.started-here" ]; then
        pid="$(cat /run/munge/munged.pid 2>/dev/null || true)"
        [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
        rm -f "$DIR/munged.started-here"
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    # The node name does not resolve; Lightning reads the rendezvous address from MASTER_ADDR first.
    env) echo "export SLURM_CONF=$CONF MASTER_ADDR=127.0.0.1" ;;
    *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
