# shellcheck shell=bash
# The private containerd shared by integration/containerd/run.sh and churn.sh:
# its config, its start, its stop and the clean-up of the cgroups its
# containers leave. Source it; it is not a command.
#
# The caller sets, before calling anything here:
#   me        the script's name, for messages
#   ns        the containerd namespace (it also names the cgroup parent)
#   tmp       the private temporary directory (config, root, state, run/)
#   sock      containerd's socket, inside $tmp
#   sfx       the suffix of every container id of this run (-PID)
#   ctrd_pid  empty; start_containerd sets it to containerd's pid
# Teardown is the caller's, with set +e: remove_containers, kill_cgroup_procs,
# its own extra kills, stop_containerd, then remove_cgroups.
# shellcheck disable=SC2154 # the variables above are the caller's

# Exit 2, not 1: the callers' exit status tells "could not set up" from "failed".
die() {
  printf '%s: error: %s\n' "$me" "$*" >&2
  exit 2
}
# stderr, so that stdout stays the result lines a caller may parse.
note() { printf '%s: %s\n' "$me" "$*" >&2; }

# Every ctr must reach our containerd and namespace, never the host's.
c() { ctr -a "$sock" -n "$ns" "$@"; }

# Every cgroup directory of this run's containers, deepest first: the ids'
# suffix keeps another run's cgroups out, and rmdir needs children first.
our_cgroups() {
  local d
  for d in /sys/fs/cgroup/"$ns" /sys/fs/cgroup/*/"$ns"; do
    [[ -d $d ]] || continue
    find "$d" -mindepth 1 -depth -type d -name "*$sfx" 2>/dev/null
  done
}

# write_config LEVEL: all containerd keeps goes under $tmp, and what would
# touch the host or need a special filesystem is off.
write_config() {
  cat >"$tmp/config.toml" <<EOF
version = 2
root = "$tmp/root"
state = "$tmp/state"
# No CRI (needs CNI and network), no /opt/containerd, none of the
# snapshotters that need a special filesystem or configuration.
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
]

[grpc]
  address = "$sock"

[ttrpc]
  address = "$sock.ttrpc"

[debug]
  address = ""
  level = "$1"

[metrics]
  address = ""
EOF
}

# containerd 1.6 puts shim sockets and the runtime root in /run/containerd
# whatever the config says: its own mount namespace, with $tmp/run bound on
# /run, keeps them off the host's. Returns once it answers, or dies.
start_containerd() {
  local i
  # unshare execs sh, which execs containerd: $! is containerd's pid.
  # shellcheck disable=SC2016 # $1 and $2 are the inner shell's
  unshare --mount --propagation private -- /bin/sh -c \
    'mount --bind "$1" /run && exec containerd --config "$2"' \
    sh "$tmp/run" "$tmp/config.toml" >"$tmp/containerd.log" 2>&1 &
  ctrd_pid=$!
  for ((i = 0; i < 100; i++)); do
    [[ -S $sock ]] && c version >/dev/null 2>&1 && break
    kill -0 "$ctrd_pid" 2>/dev/null || {
      tail -n 20 "$tmp/containerd.log" >&2
      die "containerd exited at start (log above)"
    }
    sleep 0.1
  done
  c version >/dev/null 2>&1 || {
    tail -n 20 "$tmp/containerd.log" >&2
    die "containerd did not answer on $sock within 10s (log above)"
  }
}

# remove_containers [--resume]: through containerd first, so that it drops
# its snapshots and the shims leave on their own; --resume because a paused
# task does not die of SIGKILL until it is thawed.
remove_containers() {
  local id opt resume=
  for opt; do [[ $opt != --resume ]] || resume=1; done
  if [[ -z $ctrd_pid ]] || ! kill -0 "$ctrd_pid" 2>/dev/null; then return 0; fi
  for id in $(timeout 10 ctr -a "$sock" -n "$ns" task ls -q 2>/dev/null); do
    [[ -z $resume ]] || timeout 10 ctr -a "$sock" -n "$ns" task resume "$id" >/dev/null 2>&1
    timeout 10 ctr -a "$sock" -n "$ns" task kill -a -s KILL "$id" >/dev/null 2>&1
    timeout 10 ctr -a "$sock" -n "$ns" task delete -f "$id" >/dev/null 2>&1
  done
  for id in $(timeout 10 ctr -a "$sock" -n "$ns" container ls -q 2>/dev/null); do
    timeout 10 ctr -a "$sock" -n "$ns" container delete "$id" >/dev/null 2>&1
  done
}

# kill_cgroup_procs [--thaw]: what containerd could not remove, by the pids
# in our own cgroups only, never by name; --thaw because a frozen process
# does not die of SIGKILL until it is thawed.
kill_cgroup_procs() {
  local d pid opt thaw=
  for opt; do [[ $opt != --thaw ]] || thaw=1; done
  for d in $(our_cgroups); do
    if [[ -n $thaw ]]; then
      [[ -f $d/freezer.state ]] && echo THAWED >"$d/freezer.state" 2>/dev/null
      [[ -f $d/cgroup.freeze ]] && echo 0 >"$d/cgroup.freeze" 2>/dev/null
    fi
    [[ -f $d/cgroup.procs ]] || continue
    while read -r pid; do kill -KILL "$pid" 2>/dev/null; done <"$d/cgroup.procs"
  done
}

# By the pid we started: TERM first so it can close its plugins cleanly,
# KILL after 5s so a stuck containerd cannot hang the teardown.
stop_containerd() {
  local i
  [[ -n $ctrd_pid ]] || return 0
  kill -TERM "$ctrd_pid" 2>/dev/null
  for ((i = 0; i < 50; i++)); do
    kill -0 "$ctrd_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$ctrd_pid" 2>/dev/null
  wait "$ctrd_pid" 2>/dev/null
}

# Cgroups are host-wide and outlive us: retried, since one stays busy a
# moment after its last process dies; the namespace's own directories only
# when no other run still uses them.
remove_cgroups() {
  local d i
  for ((i = 0; i < 20; i++)); do
    [[ -z $(our_cgroups | head -n1) ]] && break
    our_cgroups | xargs -r rmdir 2>/dev/null
    sleep 0.1
  done
  for d in /sys/fs/cgroup/"$ns" /sys/fs/cgroup/*/"$ns"; do
    [[ -d $d ]] && rmdir "$d" 2>/dev/null
  done
}
