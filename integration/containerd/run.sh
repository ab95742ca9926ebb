#!/usr/bin/env bash
# integration/containerd/run.sh --runtime PATH [-v] [--snapshotter S] [SCENARIO...]
#
# Runs a runc-compatible runtime under a real containerd (1.6, Debian's) and
# its containerd-shim-runc-v2, driven by ctr: `ctr run --runc-binary PATH
# --runtime io.containerd.runc.v2`. Prints `ok NAME` or `FAIL NAME: why` per
# scenario, then `N passed, N failed`; exits 1 if any failed, 2 if it could
# not set up. BRIG_CONTAINERD_KEEP_LOG=FILE keeps containerd's log there.
#
#   --runtime PATH  the runtime binary (brig, /usr/sbin/runc, or a name on PATH)
#   -v, --verbose   show each command and its output
#   --snapshotter S overlayfs or native (default: overlayfs if it works here)
#   SCENARIO...     run only these (default: all; `--list` prints them)
#
# The containerd is private: its config, root, state, sockets, shim sockets,
# the runtime's --root and ctr's FIFOs all live in one temporary directory.
# containerd runs in its own mount namespace with that directory's run/ bound
# on /run, because containerd 1.6 puts shim sockets in /run/containerd/s and
# the default runtime root in /run/containerd/runc: the host's /run/containerd
# and /var/lib/containerd are never touched. Needs root. Installs containerd
# (apt) if it is missing. On exit, even after a failure or ^C, it removes every
# container, task and snapshot, stops the processes it started, by pid, and
# deletes the directory.

# The commands run in the containers are single-quoted on purpose.
# shellcheck disable=SC2016
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck disable=SC2034 # die and note (lib.sh) read it
me=integration/containerd/run.sh
ns=brigtest
image=localhost/brig-busybox:latest

usage() { sed -n '2,13s/^# \{0,1\}//p' "$0"; }
# shellcheck source-path=SCRIPTDIR source=lib.sh disable=SC1091
. "$here/lib.sh"

all_scenarios=(echo exit-code stdin env cwd user read-only memory-limit tty
  missing-binary detach ps exec exec-tty pause-resume kill delete)
runtime=
verbose=
snap=
only=()
while (($#)); do
  case $1 in
    --runtime) runtime=${2:?--runtime needs a path} && shift ;;
    --runtime=*) runtime=${1#*=} ;;
    -v | --verbose) verbose=1 ;;
    --snapshotter) snap=${2:?--snapshotter needs a name} && shift ;;
    --snapshotter=*) snap=${1#*=} ;;
    --list)
      printf '%s\n' "${all_scenarios[@]}"
      exit 0
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) only+=("$1") ;;
  esac
  shift
done
[[ -n $runtime ]] || die "--runtime PATH is required (see --help)"
[[ $(id -u) -eq 0 ]] || die "must run as root (containerd creates real containers)"
# The shim runs the runtime from its own directory: it needs an absolute path.
if [[ $runtime != */* ]]; then
  runtime=$(command -v "$runtime") || die "runtime not found on PATH: $runtime"
fi
runtime=$(realpath -e "$runtime") || die "no such runtime: $runtime"
[[ -x $runtime ]] || die "not executable: $runtime"
for s in "${only[@]}"; do
  [[ " ${all_scenarios[*]} " == *" $s "* ]] || die "unknown scenario $s (--list shows them)"
done
((${#only[@]})) || only=("${all_scenarios[@]}")

# containerd (ctr and the shim come with it), script (a tty for ctr -t), jq
# and the rest for hack/mkimage.
need=()
command -v containerd >/dev/null || need+=(containerd)
command -v script >/dev/null || need+=(bsdutils)
command -v unshare >/dev/null || need+=(util-linux)
command -v jq >/dev/null || need+=(jq)
if ((${#need[@]})); then
  note "apt-get install ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 || {
    apt-get update -qq >/dev/null &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  } || die "could not install ${need[*]}"
fi

start_time=$SECONDS
tmp=$(mktemp -d /tmp/brig-containerd.XXXXXX)
chmod 0711 "$tmp"
sock=$tmp/containerd.sock
fifo=$tmp/fifo
mkdir -p "$tmp/run" "$fifo"
# shellcheck disable=SC2034 # lib.sh sets and reads it
ctrd_pid=
# Containers are named NAME-PID: cgroups (/brigtest/ID) are host-wide, and two
# runs of this script must not meet there.
sfx=-$$

# listed LINE CMD...: CMD prints LINE as one of its lines. (Not `CMD | grep
# -q`: grep leaves at the first match, and pipefail sees CMD's SIGPIPE.)
listed() {
  local all
  all=$("${@:2}") || return 2
  grep -Fxq -- "$1" <<<"$all"
}
ctr_=(ctr -a "$sock" -n "$ns")

teardown() {
  local rc=$? f pid
  # A second Ctrl-C must not cut the cleanup short; a trap (not an
  # ignore) leaves the commands run below killable as usual.
  trap - EXIT
  trap : INT TERM
  set +e
  remove_containers --resume
  # Whatever containerd could not remove: our containers' processes (found
  # in their cgroups, thawed first), then the shims (their pid files).
  kill_cgroup_procs --thaw
  for f in "$tmp"/state/io.containerd.runtime.v2.task/"$ns"/*/shim.pid; do
    [[ -f $f ]] && pid=$(<"$f") && [[ $pid =~ ^[0-9]+$ ]] && kill -KILL "$pid" 2>/dev/null
  done
  stop_containerd
  remove_cgroups
  if [[ -n $(our_cgroups) ]]; then
    note "cgroups left behind: $(our_cgroups | tr '\n' ' ')"
    ((rc)) || rc=1
  fi
  [[ -z ${BRIG_CONTAINERD_KEEP_LOG:-} ]] || cp "$tmp/containerd.log" "$BRIG_CONTAINERD_KEEP_LOG"
  rm -rf "$tmp" || {
    note "could not remove $tmp"
    ((rc)) || rc=1
  }
  exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- a private containerd ----------------------------------------------------
write_config info
start_containerd

# overlayfs when containerd's own probe (a test mount) says it works here,
# else native (copies).
snapshotter_ok() {
  [[ $(c plugins ls 2>/dev/null | awk -v s="$1" '$1 == "io.containerd.snapshotter.v1" && $2 == s {print $4}') == ok ]]
}
if [[ -n $snap ]]; then
  snapshotter_ok "$snap" || die "snapshotter $snap is not available here (ctr plugins ls)"
elif snapshotter_ok overlayfs; then
  snap=overlayfs
else
  snap=native
  note "overlayfs snapshotter unavailable here, using native"
fi

# The image, and the same with User 1000:1000 (ctr 1.6's run has no --user).
image_user=${image%:*}:user
out=$("$repo/hack/mkimage" "$tmp/image.tar" "$image" 2>&1) ||
  die "hack/mkimage failed: $out"
out=$("$repo/hack/mkimage" --user 1000:1000 "$tmp/image-user.tar" "$image_user" 2>&1) ||
  die "hack/mkimage --user failed: $out"
for i in image image-user; do
  out=$(c image import --snapshotter "$snap" "$tmp/$i.tar" 2>&1) ||
    die "ctr image import $i.tar failed: $out"
done
for i in "$image" "$image_user"; do
  listed "$i" c image ls -q || die "ctr image import did not create $i: $out"
done

printf '# containerd %s, shim containerd-shim-runc-v2, snapshotter %s\n' \
  "$(containerd --version | awk '{print $3}')" "$snap"
printf '# runtime %s (%s)\n' "$runtime" "$("$runtime" --version 2>/dev/null | head -n1)"

# --- helpers -----------------------------------------------------------------
why=
out=
rc=0
# fail WHY: the scenario's reason, for the FAIL line; returns 1.
fail() {
  why=$*
  return 1
}
# sh_ CMD...: run CMD with a time limit, output (stdout+stderr, no CR) in
# $out, exit status in $rc. Never fails.
sh_() {
  rc=0
  out=$(timeout -k 5 30 "$@" 2>&1 </dev/null) || rc=$?
  out=${out//$'\r'/}
  if [[ -n $verbose ]]; then
    printf '  $ %s\n' "$*" >&2
    [[ -z $out ]] || printf '%s\n' "$out" | sed 's/^/  | /' >&2
    printf '  (exit %d)\n' "$rc" >&2
  fi
  return 0
}
# run_ [CTR-RUN-FLAGS...] NAME -- CMD...: ctr run --rm $run_image with this
# runtime, as container NAME-PID.
run_image=$image
run_() {
  local flags=()
  while [[ $1 != -- ]]; do
    flags+=("$1")
    shift
  done
  local name=${flags[-1]}
  unset 'flags[-1]'
  shift
  sh_ "${ctr_[@]}" run --rm --runtime io.containerd.runc.v2 --runc-binary "$runtime" \
    --snapshotter "$snap" --fifo-dir "$fifo" "${flags[@]}" "$run_image" "$name$sfx" "$@"
}
# expect_out WANT: $out is exactly WANT and $rc is 0.
expect_out() {
  ((rc == 0)) || fail "exit $rc, want 0; output: $(last_line)" || return 1
  [[ $out == "$1" ]] || fail "output $(printf %q "$out"), want $(printf %q "$1")"
}
# tty_ CMD: run the shell command CMD under script(1), on a new terminal. On
# its stdin's EOF script sends the terminal a NUL, which the container's
# terminal echoes as "^@": drop those. (And processes on a terminal sleep a
# little before they exit: ctr resizes the terminal once they have started,
# and says "resize pty ... cannot resize a stopped container" if they are
# already gone.)
tty_() {
  sh_ env SHELL=/bin/bash script -qec "$1" /dev/null
  out=${out//^@/}
  out=$(printf '%s' "$out") # and the newlines that preceded one at the end
}
last_line() { printf '%s' "$out" | tail -n1; }
snapshot_keys() { c snapshots --snapshotter "$snap" ls | awk 'NR > 1 {print $1}'; }
# task_status ID: RUNNING, PAUSED, STOPPED, CREATED... from `ctr task ls`.
task_status() { c task ls 2>/dev/null | awk -v id="$1" '$1 == id {print $3}'; }

# --- scenarios -----------------------------------------------------------------
s_echo() {
  run_ echo -- echo hello from the container
  expect_out "hello from the container"
}
s_exit-code() {
  run_ exit-code -- sh -c 'exit 3'
  ((rc == 3)) || fail "ctr run exit $rc, want 3; output: $(last_line)"
}
s_stdin() {
  # Two lines read, not read to EOF: ctr 1.6 loses an EOF that comes before
  # the task has started (whatever the runtime).
  rc=0
  out=$(printf 'one\ntwo\n' | timeout -k 5 30 "${ctr_[@]}" run --rm \
    --runtime io.containerd.runc.v2 --runc-binary "$runtime" --snapshotter "$snap" \
    --fifo-dir "$fifo" "$image" "stdin$sfx" sh -c 'read -r a; read -r b; echo "$b|$a"' 2>&1) || rc=$?
  [[ -z $verbose ]] || printf '  $ printf "one\\ntwo\\n" | ctr run ... read; read\n%s\n  (exit %d)\n' "$out" "$rc" >&2
  expect_out "two|one"
}
s_env() {
  run_ --env FOO=bar --env 'SPACED=a b' env -- sh -c 'echo "$FOO|$SPACED|$PATH"'
  expect_out "bar|a b|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
}
s_cwd() {
  run_ --cwd /etc cwd -- pwd
  expect_out /etc
}
s_user() {
  # ctr 1.6's run has no --user: the image's User (1000:1000) sets it, as
  # docker run --user and USER do, through process.user in config.json.
  run_image=$image_user
  run_ user -- sh -c 'id -u; id -g; touch /root/x 2>/dev/null && echo root-writable || echo denied'
  run_image=$image
  expect_out $'1000\n1000\ndenied'
}
s_read-only() {
  run_ --read-only read-only -- sh -c 'touch /x 2>&1; echo "rc=$?"; echo ok >/dev/null && echo devnull-ok'
  ((rc == 0)) || fail "exit $rc; output: $(last_line)" || return 1
  [[ $out == *"Read-only file system"* && $out == *"rc=1"* && $out == *devnull-ok ]] ||
    fail "writing / did not fail with EROFS: $(printf %q "$out")"
}
s_memory-limit() {
  # containerd's default spec has no cgroup mount: ask for one, read-only.
  local want=$((64 * 1024 * 1024))
  run_ --memory-limit "$want" --mount type=cgroup,src=cgroup,dst=/sys/fs/cgroup,options=ro:nosuid:nodev:noexec \
    memory-limit -- sh -c '
      f=/sys/fs/cgroup/memory/memory.limit_in_bytes
      [ -e $f ] || f=/sys/fs/cgroup/memory.max
      cat $f
      awk "\$5 == \"${f%/*}\" {print \$4}" /proc/self/mountinfo
      grep -E "^0::|[:,]memory:" /proc/self/cgroup | tail -n1 | cut -d: -f3'
  local got mnt own
  { read -r got; read -r mnt; read -r own; } <<<"$out"
  ((rc == 0)) || fail "exit $rc; output: $(last_line)" || return 1
  [[ $got == "$want" ]] ||
    fail "limit $got, want $want (the cgroup mounted there is $mnt; the container's is $own)"
}
s_tty() {
  # ctr -t wants a terminal on its stdin: script(1) gives it one.
  local cmd
  printf -v cmd '%q ' ctr -a "$sock" -n "$ns" run --rm -t --runtime io.containerd.runc.v2 \
    --runc-binary "$runtime" --snapshotter "$snap" --fifo-dir "$fifo" "$image" "tty$sfx" \
    sh -c 'tty; [ -t 0 ] && [ -t 1 ] && echo both-ttys; sleep 0.5; exit 4'
  tty_ "$cmd"
  ((rc == 4)) || fail "exit $rc, want 4; output: $(last_line)" || return 1
  [[ $out == $'/dev/pts/0\nboth-ttys' ]] || fail "output $(printf %q "$out")"
}
s_missing-binary() {
  # The shim reads the last error line of the runtime's JSON log (--log
  # log.json --log-format json) and ctr prints it: the runtime's own words
  # must reach the user, not "unable to retrieve OCI runtime error".
  run_ missing-binary -- no-such-binary
  ((rc != 0)) || fail "ctr run succeeded" || return 1
  [[ $out == *'exec: "no-such-binary": executable file not found in $PATH'* ]] ||
    fail "the runtime's message did not reach ctr: $(last_line)" || return 1
  [[ $out != *"unable to retrieve OCI runtime error"* ]] ||
    fail "the shim could not read the runtime's log: $(last_line)"
  # And nothing is left of it.
  ! listed "missing-binary$sfx" c container ls -q || fail "container left behind"
}

# One detached container for the rest: it leaves with code 7 on SIGTERM.
did=detach$sfx
s_detach() {
  sh_ "${ctr_[@]}" run -d --runtime io.containerd.runc.v2 --runc-binary "$runtime" --snapshotter "$snap" \
    --fifo-dir "$fifo" "$image" "$did" sh -c 'trap "exit 7" TERM; sleep 1000 & wait'
  ((rc == 0)) || fail "ctr run -d: exit $rc: $(last_line)" || return 1
  [[ $(task_status "$did") == RUNNING ]] || fail "status $(task_status "$did"), want RUNNING"
}
# need_detached: the detached container is running (started here when the
# detach scenario was not selected).
need_detached() {
  if ! listed "$did" c container ls -q; then
    s_detach || return 1
  fi
  [[ $(task_status "$did") == RUNNING ]] || fail "the detached container is not running (status: $(task_status "$did"))"
}
s_ps() {
  need_detached || return 1
  local init
  init=$(c task ls | awk -v id="$did" '$1 == id {print $2}')
  sh_ "${ctr_[@]}" task ps "$did"
  ((rc == 0)) || fail "ctr task ps: exit $rc: $(last_line)" || return 1
  # Two processes: sh (the init) and its sleep.
  local pids
  pids=$(printf '%s\n' "$out" | awk 'NR > 1 && $1 ~ /^[0-9]+$/ {print $1}' | sort -n | tr '\n' ' ')
  [[ " $pids" == *" $init "* && $(wc -w <<<"$pids") -eq 2 ]] ||
    fail "ctr task ps shows pids [${pids% }], want the init $init and one more"
}
s_exec() {
  need_detached || return 1
  sh_ "${ctr_[@]}" task exec --exec-id exec1 --fifo-dir "$fifo" "$did" sh -c 'echo "in $(pwd) as $(id -u)"; exit 5'
  ((rc == 5)) || fail "ctr task exec: exit $rc, want 5; output: $(last_line)" || return 1
  [[ $out == "in / as 0" ]] || fail "exec output $(printf %q "$out")" || return 1
  sh_ "${ctr_[@]}" task exec --exec-id exec2 --fifo-dir "$fifo" --user 1000 --cwd /tmp "$did" sh -c 'echo "in $(pwd) as $(id -u)"'
  expect_out "in /tmp as 1000"
}
s_exec-tty() {
  need_detached || return 1
  local cmd
  printf -v cmd '%q ' ctr -a "$sock" -n "$ns" task exec -t --exec-id exectty --fifo-dir "$fifo" \
    "$did" sh -c 'tty; [ -t 0 ] && echo stdin-tty; sleep 0.5'
  tty_ "$cmd"
  ((rc == 0)) || fail "exit $rc; output: $(last_line)" || return 1
  local want='^/dev/pts/[0-9]+'$'\n''stdin-tty$'
  [[ $out =~ $want ]] || fail "output $(printf %q "$out")"
}
s_pause-resume() {
  need_detached || return 1
  sh_ "${ctr_[@]}" task pause "$did"
  ((rc == 0)) || fail "ctr task pause: exit $rc: $(last_line)" || return 1
  [[ $(task_status "$did") == PAUSED ]] || fail "after pause: status $(task_status "$did"), want PAUSED" || return 1
  sh_ "${ctr_[@]}" task resume "$did"
  ((rc == 0)) || fail "ctr task resume: exit $rc: $(last_line)" || return 1
  [[ $(task_status "$did") == RUNNING ]] || fail "after resume: status $(task_status "$did"), want RUNNING"
}
s_kill() {
  need_detached || return 1
  sh_ "${ctr_[@]}" task kill "$did" # SIGTERM
  ((rc == 0)) || fail "ctr task kill: exit $rc: $(last_line)" || return 1
  local i
  for ((i = 0; i < 50; i++)); do
    [[ $(task_status "$did") == STOPPED ]] && break
    sleep 0.1
  done
  [[ $(task_status "$did") == STOPPED ]] || fail "5s after SIGTERM: status $(task_status "$did"), want STOPPED" || return 1
  # The shim's --root for the runtime (/run/containerd/runc/NS in containerd's
  # mount namespace): the stopped container's state is there until delete.
  local state=$tmp/run/containerd/runc/$ns/$did
  [[ -e $state ]] || fail "no runtime state at /run/containerd/runc/$ns/$did" || return 1
  # ctr task delete reports the task's exit code.
  sh_ "${ctr_[@]}" task delete "$did"
  ((rc == 0)) || fail "ctr task delete: exit $rc: $(last_line)" || return 1
  [[ $out == *"exit with non-zero exit code 7"* ]] ||
    fail "ctr task delete: want the trap's exit code 7, got: $(last_line)" || return 1
  [[ -z $(task_status "$did") ]] || fail "task still listed after delete" || return 1
  [[ ! -e $state ]] || fail "the runtime's delete left its state in /run/containerd/runc/$ns/$did"
}
s_delete() {
  listed "$did" c container ls -q || s_detach || return 1
  if [[ -n $(task_status "$did") ]]; then # kill did not get that far
    c task kill -s KILL "$did" >/dev/null 2>&1
    sleep 0.5
    c task delete -f "$did" >/dev/null 2>&1
  fi
  sh_ "${ctr_[@]}" container delete "$did"
  ((rc == 0)) || fail "ctr container delete: exit $rc: $(last_line)" || return 1
  ! listed "$did" c container ls -q || fail "container still listed" || return 1
  ! listed "$did" snapshot_keys || fail "its snapshot is still there"
}

passed=0
failed=0
for s in "${only[@]}"; do
  why=
  if "s_$s"; then
    printf 'ok %s\n' "$s"
    passed=$((passed + 1))
  else
    printf 'FAIL %s: %s\n' "$s" "${why:-failed}"
    failed=$((failed + 1))
  fi
done
printf '%d passed, %d failed (%s, %ds)\n' "$passed" "$failed" "${runtime##*/}" $((SECONDS - start_time))
((failed == 0))
