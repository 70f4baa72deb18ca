#!/usr/bin/env bash
# Run a VPP built from FD.io's source (with its lb plugin) the way the real-VPP
# test tier needs it: no DPDK, no hugepages (every page size 4k), all sockets
# in RUNDIR, the lb plugin only, a main thread plus one worker when there are
# two CPUs or more (VPP pins each worker to a CPU of its own).
#
#   scripts/run-vpp.sh start PREFIX RUNDIR [STARTUP_CONFIG] [WORKERS]
#       start VPP from the install PREFIX (bin/vpp, bin/vppctl, lib*/), wait
#       until its CLI answers, print its PID. With STARTUP_CONFIG (a file of
#       CLI commands, e.g. scripts/lb-representative.vpp) VPP runs it itself,
#       as operators configure it: the API answers before it has finished.
#   scripts/run-vpp.sh ctl PREFIX RUNDIR CMD...   one vppctl command
#   scripts/run-vpp.sh stop RUNDIR                SIGTERM, wait for the exit
#   scripts/run-vpp.sh kill RUNDIR                SIGKILL (a crash: sockets left stale)
#
# RUNDIR then holds api.sock, stats.sock, cli.sock, startup.conf, vpp.log and
# vpp.pid: point the agent at it with --vpp-api-socket RUNDIR/api.sock
# --vpp-stats-socket RUNDIR/stats.sock. Needs root (VPP maps its memory and
# pins threads); nothing outside RUNDIR and /dev/shm is touched.
set -euo pipefail

usage() { sed -n '7,16p' "$0" >&2; exit 2; }
[ $# -ge 2 ] || usage
cmd=$1

find_lib_dir() {  # the directory holding libvppinfra.so under PREFIX
  local f
  f=$(find "$1" -name 'libvppinfra.so*' -print -quit 2>/dev/null || true)
  [ -n "$f" ] || { echo "run-vpp: no libvppinfra.so under $1" >&2; exit 1; }
  dirname "$f"
}

vppctl_in() {  # PREFIX RUNDIR CMD...
  local prefix=$1 run=$2; shift 2
  LD_LIBRARY_PATH=$(find_lib_dir "$prefix") "$prefix/bin/vppctl" -s "$run/cli.sock" "$@"
}

case "$cmd" in
  start)
    [ $# -ge 3 ] || usage
    prefix=$(realpath "$2"); run=$(realpath -m "$3"); startup=${4:-}; workers=${5:-}
    [ -x "$prefix/bin/vpp" ] || { echo "run-vpp: no $prefix/bin/vpp" >&2; exit 1; }
    libdir=$(find_lib_dir "$prefix")
    plugin=$(find "$prefix" -name lb_plugin.so -print -quit)
    [ -n "$plugin" ] || { echo "run-vpp: no lb_plugin.so under $prefix" >&2; exit 1; }
    if [ -z "$workers" ]; then
      workers=0; [ "$(nproc)" -ge 2 ] && workers=1
    fi
    mkdir -p "$run"
    startup_line=""
    if [ -n "$startup" ]; then startup_line="startup-config $(realpath "$startup")"; fi
    cpu_line="main-core 0"
    [ "$workers" -gt 0 ] && cpu_line="main-core 0 corelist-workers 1-$workers"
    # A name of its own for the shared-memory API segment: several VPPs may
    # run; a crashed one's segment is removed before its successor starts.
    shm=axlb$(printf '%s' "$run" | md5sum | cut -c1-8)
    rm -f /dev/shm/"$shm"-*
    cat > "$run/startup.conf" <<CONF
unix {
  nodaemon
  cli-listen $run/cli.sock
  runtime-dir $run
  log $run/vpp.log
  $startup_line
}
api-segment { prefix $shm }
socksvr { socket-name $run/api.sock }
statseg { socket-name $run/stats.sock size 128m page-size 4k }
memory { main-heap-size 1G main-heap-page-size 4k }
buffers { buffers-per-numa 16384 page-size 4k }
cpu { $cpu_line }
plugins {
  path $(dirname "$plugin")
  plugin default { disable }
  plugin lb_plugin.so { enable }
}
CONF
    rm -f "$run/api.sock" "$run/stats.sock" "$run/cli.sock"
    LD_LIBRARY_PATH=$libdir setsid "$prefix/bin/vpp" -c "$run/startup.conf" \
      </dev/null >"$run/vpp.out" 2>&1 &
    pid=$!
    echo "$pid" > "$run/vpp.pid"
    for _ in $(seq 1 200); do
      if ! kill -0 "$pid" 2>/dev/null; then
        echo "run-vpp: vpp exited; its output:" >&2; tail -20 "$run/vpp.out" >&2; exit 1
      fi
      if [ -S "$run/cli.sock" ] && vppctl_in "$prefix" "$run" show version >/dev/null 2>&1; then
        echo "$pid"; exit 0
      fi
      sleep 0.1
    done
    echo "run-vpp: vpp did not answer on $run/cli.sock within 20 s" >&2
    kill -9 "$pid" 2>/dev/null || true
    exit 1
    ;;
  ctl)
    [ $# -ge 4 ] || usage
    prefix=$2; run=$3; shift 3
    vppctl_in "$prefix" "$run" "$@"
    ;;
  stop|kill)
    run=$2
    [ -f "$run/vpp.pid" ] || exit 0
    pid=$(cat "$run/vpp.pid")
    sig=TERM; [ "$cmd" = kill ] && sig=KILL
    kill -s "$sig" "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
    rm -f "$run/vpp.pid"
    ;;
  *) usage ;;
esac
