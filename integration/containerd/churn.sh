#!/usr/bin/env bash
# integration/containerd/churn.sh --runtime PATH [--count N] [--parallel P]
#
# Opt-in load test, not run by CI. As root, from the repository root:
#   integration/containerd/churn.sh --runtime target/x86_64-unknown-linux-gnu/release/brig
#   integration/containerd/churn.sh --runtime /usr/sbin/runc --count 50   # the reference
#
# N (default 200) `ctr run --rm --runtime io.containerd.runc.v2
# --runc-binary PATH` of `true`, P (default 4) at a time, under a private
# containerd set up as run.sh does (its config, root, state, sockets and the
# runtime's --root all in one temporary directory; containerd in its own mount
# namespace with that directory's run/ bound on /run). Then checks that
# nothing is left: no container, task or snapshot of the churn in containerd,
# no state dir under the runtime's root, no cgroup, no mount of the temporary
# directory (host's or containerd's), no shim or container process. Prints the
# time per container, `ok` or `FAIL: what`, exits 1 on a leftover or a failed
# run, 2 if it could not set up.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck disable=SC2034 # die and note (lib.sh) read it
me=integration/containerd/churn.sh
ns=brigchurn
image=localhost/brig-busybox:latest

usage() { sed -n '2,17s/^# \{0,1\}//p' "$0"; }
# shellcheck source-path=SCRIPTDIR source=lib.sh disable=SC1091
. "$here/lib.sh"

runtime=
count=200
par=4
while (($#)); do
  case $1 in
    --runtime) runtime=${2:?--runtime needs a path} && shift ;;
    --runtime=*) runtime=${1#*=} ;;
    --count) count=${2:?--count needs a number} && shift ;;
    --count=*) count=${1#*=} ;;
    --parallel) par=${2:?--parallel needs a number} && shift ;;
    --parallel=*) par=${1#*=} ;;
    -h | --help)
      usage
      exit 0
      ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
  shift
done
[[ -n $runtime ]] || die "--runtime PATH is required (see --help)"
[[ $count =~ ^[0-9]+$ && $par =~ ^[1-9][0-9]*$ ]] || die "--count and --parallel take numbers"
[[ $(id -u) -eq 0 ]] || die "must run as root (containerd creates real containers)"
if [[ $runtime != */* ]]; then
  runtime=$(command -v "$runtime") || die "runtime not found on PATH: $runtime"
fi
runtime=$(realpath -e "$runtime") || die "no such runtime: $runtime"
[[ -x $runtime ]] || die "not executable: $runtime"
command -v containerd >/dev/null || {
  note "apt-get install containerd"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq containerd >/dev/null ||
    die "could not install containerd"
}

tmp=$(mktemp -d /tmp/brig-churn.XXXXXX)
chmod 0711 "$tmp"
sock=$tmp/containerd.sock
fifo=$tmp/fifo
mkdir -p "$tmp/run" "$fifo"
ctrd_pid=
sfx=-$$

# Processes whose command line names the temporary directory (shims, which
# are given its socket) or whose cgroup is one of the churn's.
our_processes() {
  local f pid
  for f in /proc/[0-9]*/cmdline; do
    pid=${f#/proc/}
    pid=${pid%/cmdline}
    [[ $pid == "$$" || $pid == "$ctrd_pid" ]] && continue
    if { tr '\0' ' ' <"$f"; } 2>/dev/null | grep -qF -- "$tmp/containerd.sock" ||
      grep -qE -- "/$ns/[^/]*$sfx\$" "/proc/$pid/cgroup" 2>/dev/null; then
      echo "$pid"
    fi
  done
}

teardown() {
  local rc=$? pid
  # A second Ctrl-C must not cut the cleanup short; a trap (not an
  # ignore) leaves the commands run below killable as usual.
  trap - EXIT
  trap : INT TERM
  set +e
  remove_containers
  kill_cgroup_procs
  for pid in $(our_processes); do kill -KILL "$pid" 2>/dev/null; done
  stop_containerd
  remove_cgroups
  rm -rf "$tmp" || note "could not remove $tmp"
  exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

write_config warn
start_containerd

snap=native
[[ $(c plugins ls 2>/dev/null | awk '$1 == "io.containerd.snapshotter.v1" && $2 == "overlayfs" {print $4}') == ok ]] &&
  snap=overlayfs
out=$("$repo/hack/mkimage" "$tmp/image.tar" "$image" 2>&1) || die "hack/mkimage failed: $out"
out=$(c image import --snapshotter "$snap" "$tmp/image.tar" 2>&1) || die "ctr image import failed: $out"
snapshots_before=$(c snapshots --snapshotter "$snap" ls | wc -l)
printf '# containerd %s, snapshotter %s, runtime %s, %d runs, %d at a time\n' \
  "$(containerd --version | awk '{print $3}')" "$snap" "$runtime" "$count" "$par"

# One container: ctr run --rm, output in $tmp/out/N on failure.
mkdir -p "$tmp/out"
one() {
  local n=$1
  if ! timeout -k 5 60 ctr -a "$sock" -n "$ns" run --rm --runtime io.containerd.runc.v2 \
    --runc-binary "$runtime" --snapshotter "$snap" --fifo-dir "$fifo" \
    "$image" "churn-$n$sfx" true >"$tmp/out/$n" 2>&1 </dev/null; then
    echo "FAIL run $n: $(tail -n 1 "$tmp/out/$n")"
  fi
}
export -f one
export sock ns runtime snap fifo image sfx tmp

start=$(date +%s.%N)
failed=$(seq 1 "$count" | xargs -P "$par" -I{} bash -c 'one {}')
end=$(date +%s.%N)
awk -v s="$start" -v e="$end" -v n="$count" -v p="$par" 'BEGIN {
  printf "churn: %d containers in %.1f s, %.1f ms per container (%d at a time)\n", n, e - s, (e - s) * 1000 / (n ? n : 1), p }'

# --- leftovers -----------------------------------------------------------------
problems=()
[[ -z $failed ]] || problems+=("$(printf '%s\n' "$failed" | head -n 3)")
sleep 0.5 # shims exit after their last task is deleted
left=$(c container ls -q)
[[ -z $left ]] || problems+=("containers left: $(echo "$left" | head -n 3 | tr '\n' ' ')")
left=$(c task ls -q)
[[ -z $left ]] || problems+=("tasks left: $(echo "$left" | head -n 3 | tr '\n' ' ')")
left=$(($(c snapshots --snapshotter "$snap" ls | wc -l) - snapshots_before))
((left == 0)) || problems+=("$left snapshots left")
# The shim gives the runtime --root /run/containerd/runc/NS: $tmp/run here.
left=$(find "$tmp/run/containerd/runc/$ns" -mindepth 1 -maxdepth 1 2>/dev/null | head -n 3)
[[ -z $left ]] || problems+=("runtime state left: $left")
left=$(our_cgroups | head -n 3)
[[ -z $left ]] || problems+=("cgroups left: $(echo "$left" | tr '\n' ' ')")
left=$(cat /proc/self/mountinfo "/proc/$ctrd_pid/mountinfo" | grep -F "churn-" | grep -cF -- "$sfx" || true)
((left == 0)) || problems+=("$left mounts of the churn's containers left")
for ((i = 0; i < 50; i++)); do
  left=$(our_processes)
  [[ -z $left ]] && break
  sleep 0.1
done
[[ -z $left ]] || problems+=("processes left: $(echo "$left" | head -n 5 | tr '\n' ' ')")

if ((${#problems[@]})); then
  printf 'FAIL: %s\n' "${problems[@]}"
  exit 1
fi
echo ok
