# shellcheck shell=bash
# Single quotes keep $... for the container's shell, not ours:
# shellcheck disable=SC2016
# The scenarios shared by integration/podman/run.sh and integration/docker/run.sh.
# Source it; it is not a command. podman and docker take the same flags for
# everything used here, so each scenario is written once.
#
# The driver sets, before calling run_scenarios:
#   CLIENT  podman | docker
#   CLI     array: the client binary and its global flags (private instance)
#   RUNF    array: flags every `run` gets (--network none, and the runtime
#           or cgroup parent where the client needs them per run)
#   IMAGE   the imported busybox image
#   WORK    a scratch directory
# and may set ONLY (array of scenario names to run; empty: all).
# run_scenarios prints `ok NAME` or `FAIL NAME: why` per scenario, then
# `N passed, N failed`, and returns non-zero if any failed.
# release_private is the drivers' common teardown.

PASSED=0
FAILED=0
FAILED_NAMES=()
CTR_PREFIX=brigtest$$
# Longest a single client command may take: a hung runtime must not hang
# the suite.
CMD_TIMEOUT=${CMD_TIMEOUT:-60}

# x ARGS...: run the client with ARGS; sets RC, OUT, ERR (stdin is /dev/null).
x() {
  RC=0
  timeout --kill-after=5 "$CMD_TIMEOUT" "${CLI[@]}" "$@" \
    >"$WORK/out" 2>"$WORK/err" </dev/null || RC=$?
  OUT=$(tr -d '\r' <"$WORK/out")
  ERR=$(tr -d '\r' <"$WORK/err")
}

# xtty ARGS...: as x, but the client gets a terminal (script(1) makes a pty).
# OUT holds everything the terminal showed (stdout and stderr), without the
# carriage returns and NULs a pty adds. script's stdin is a fifo opened
# read-write: it never reaches end of file, as a person's terminal would not
# (at end of file script ends the session, and the client may stop early).
# The client must stay in the pty's foreground process group, or setting raw
# mode stops it with SIGTTOU: so timeout runs with --foreground (it would
# otherwise make its own process group) and is exec'd by the shell script(1)
# starts, which is bash whatever $SHELL says (%q quotes for bash).
xtty() {
  local cmd
  printf -v cmd '%q ' timeout --foreground --kill-after=5 "$CMD_TIMEOUT" "${CLI[@]}" "$@"
  [[ -p $WORK/stdin ]] || mkfifo "$WORK/stdin"
  RC=0
  SHELL=/bin/bash script -qec "exec $cmd" /dev/null >"$WORK/out" 2>"$WORK/err" <>"$WORK/stdin" || RC=$?
  OUT=$(tr -d '\r\000' <"$WORK/out")
  ERR=$(tr -d '\r' <"$WORK/err")
}

# oneline TEXT: TEXT on one line, at most 600 characters: the middle goes,
# as a client's error names the cause last.
oneline() {
  local s=${1//$'\n'/ | }
  ((${#s} > 600)) && s="${s:0:200} ... ${s: -400}"
  printf '%s' "$s"
}

# What the last command did, for a failure message.
got() { oneline "rc=$RC stdout=[$OUT] stderr=[$ERR]"; }

# WHY is the failure message a scenario sets before returning 1.
WHY=
fail_because() {
  WHY=$*
  return 1
}

# expect_rc N WHAT: the last command exited N.
expect_rc() {
  ((RC == $1)) || fail_because "$2: expected exit $1, got $(got)"
}

# expect_out TEXT WHAT: the last command exited 0 and printed exactly TEXT.
expect_out() {
  if ((RC == 0)) && [[ $OUT == "$1" ]]; then
    return 0
  fi
  fail_because "$2: expected exit 0 and stdout [$1], got $(got)"
}

# state NAME: the container's status as the client reports it
# (running, paused, exited, ...), or empty if it does not exist. `container
# inspect`, not `inspect`: podman would look a missing name up as an image
# too, and that takes a lock in /var/cache/containers.
state() {
  x container inspect -f '{{.State.Status}}' "$1"
  ((RC == 0)) && printf '%s' "$OUT"
}

# wait_state NAME STATUS [SECONDS]: poll until the container has STATUS.
wait_state() {
  local i
  for ((i = 0; i < ${3:-10} * 10; i++)); do
    [[ $(state "$1") == "$2" ]] && return 0
    sleep 0.1
  done
  return 1
}

# host_cgroup_file PID CONTROLLER FILE: the path, on the host, of FILE in
# PID's cgroup: in CONTROLLER's v1 hierarchy if there is one, else in the
# cgroup2 tree.
host_cgroup_file() {
  local line
  line=$(grep -E "^[0-9]+:([^:]*,)?$2(,[^:]*)?:" "/proc/$1/cgroup")
  if [[ -n $line ]]; then
    printf '/sys/fs/cgroup/%s%s/%s' "$2" "${line#*:*:}" "$3"
  else
    printf '/sys/fs/cgroup%s/%s' "$(sed -n 's/^0:://p' "/proc/$1/cgroup")" "$3"
  fi
}

# host_mem_limit PID: the memory limit of PID's cgroup, read on the host
# (v1 memory.limit_in_bytes, or v2 memory.max).
host_mem_limit() {
  local f
  f=$(host_cgroup_file "$1" memory memory.limit_in_bytes)
  [[ -e $f ]] || f=$(host_cgroup_file "$1" memory memory.max)
  cat "$f"
}

# ctr_pid NAME: the container's init pid, as the client reports it.
ctr_pid() {
  x container inspect -f '{{.State.Pid}}' "$1"
  [[ $OUT =~ ^[1-9][0-9]*$ ]] && printf '%s' "$OUT"
}

# --- the scenarios: each returns 0, or sets WHY and returns 1 ---------------

# The long-lived container the -d/exec/top/pause/update/stop/rm scenarios share.
LONG=${CTR_PREFIX}-detached
# sh as pid 1 exits on SIGTERM only because it traps it; `stop` must not have
# to fall back to SIGKILL.
LONG_CMD='trap "exit 0" TERM; while :; do sleep 1; done'

s_run_rm() {
  local name=${CTR_PREFIX}-rm i
  x run --rm --name "$name" "${RUNF[@]}" "$IMAGE" echo hello
  expect_out hello "run --rm echo hello" || return 1
  # docker removes a --rm container from the daemon, asynchronously.
  for ((i = 0; i < 50; i++)); do
    [[ -z $(state "$name") ]] && return 0
    sleep 0.1
  done
  fail_because "the --rm container is still there: $(state "$name")"
}

s_exit_code() {
  x run --rm "${RUNF[@]}" "$IMAGE" sh -c 'exit 3'
  expect_rc 3 "run sh -c 'exit 3'"
}

s_detach() {
  x run -d --name "$LONG" -e FOO=fromrun "${RUNF[@]}" "$IMAGE" sh -c "$LONG_CMD"
  ((RC == 0)) || fail_because "run -d: $(got)" || return 1
  wait_state "$LONG" running 10 ||
    fail_because "run -d: container not running: status [$(state "$LONG")]"
}

s_exec() {
  x exec "$LONG" sh -c 'echo hi $FOO'
  expect_out "hi fromrun" "exec sh -c 'echo hi \$FOO'"
}

s_exec_exit_code() {
  x exec "$LONG" sh -c 'exit 4'
  expect_rc 4 "exec sh -c 'exit 4'"
}

s_exec_options() {
  x exec -u 1000:1000 -w /tmp -e BAR=baz "$LONG" sh -c 'echo $(id -u):$(id -g) $(pwd) $BAR $FOO'
  expect_out "1000:1000 /tmp baz fromrun" "exec -u 1000:1000 -w /tmp -e BAR=baz"
}

s_exec_tty() {
  xtty exec -it "$LONG" tty
  if ((RC == 0)) && [[ $OUT =~ /dev/pts/[0-9]+ ]]; then
    return 0
  fi
  fail_because "exec -it tty: expected /dev/pts/N, got $(got)"
}

s_exec_missing() {
  # docker makes every failed exec 126; podman maps runc's wording to 127.
  local want=127
  [[ $CLIENT == docker ]] && want=126
  x exec "$LONG" nonexistent-cmd
  expect_rc "$want" "exec nonexistent-cmd" || return 1
  [[ "$OUT $ERR" == *'executable file not found in $PATH'* ]] ||
    fail_because "exec nonexistent-cmd: the runtime's message is missing: $(got)"
}

s_top() {
  # docker asks the runtime (ps --format json); podman reads /proc.
  x top "$LONG"
  if ((RC == 0)) && [[ $OUT == *"trap"* ]]; then
    return 0
  fi
  fail_because "top: expected the container's sh in the list, got $(got)"
}

# A container run without resource flags keeps the kernel's defaults. Docker
# sends `cpu.shares: 0`, `blockIO.weight: 0` (and zeros in every field
# `update` does not change): runc reads 0 as "not set"; writing it would give
# cpu.shares 2, the lowest CPU priority there is.
s_cgroup_defaults() {
  local pid f want got_
  pid=$(ctr_pid "$LONG") || fail_because "container inspect gave no pid for $LONG" || return 1
  f=$(host_cgroup_file "$pid" cpu cpu.shares)
  want=1024
  if [[ ! -e $f ]]; then
    f=$(host_cgroup_file "$pid" cpu cpu.weight)
    want=100
  fi
  got_=$(cat "$f" 2>&1)
  [[ $got_ == "$want" ]] ||
    fail_because "${f##*/} of a container run without --cpu-shares is [$got_], not the default $want ($f)" || return 1
  soft_limit_unset "$pid" "a container run without --memory-reservation"
}

# soft_limit_unset PID WHAT: on v1, PID's memory.soft_limit_in_bytes is still
# unlimited (a runtime that writes docker's `reservation: 0` sets it to 0).
soft_limit_unset() {
  local f v
  f=$(host_cgroup_file "$1" memory memory.soft_limit_in_bytes)
  [[ -e $f ]] || return 0
  v=$(cat "$f" 2>&1)
  [[ $v == 9223372036854771712 ]] ||
    fail_because "memory.soft_limit_in_bytes of $2 is [$v], not unlimited ($f)"
}

s_pause() {
  x pause "$LONG"
  ((RC == 0)) || fail_because "pause: $(got)" || return 1
  wait_state "$LONG" paused 5 ||
    fail_because "pause: status is [$(state "$LONG")], not paused" || return 1
  x unpause "$LONG"
  ((RC == 0)) || fail_because "unpause: $(got)" || return 1
  wait_state "$LONG" running 5 ||
    fail_because "unpause: status is [$(state "$LONG")], not running"
}

s_update() {
  local pid limit
  x update --memory 96m --memory-swap 192m "$LONG"
  ((RC == 0)) || fail_because "update --memory 96m: $(got)" || return 1
  pid=$(ctr_pid "$LONG") || fail_because "container inspect gave no pid for $LONG" || return 1
  limit=$(host_mem_limit "$pid" 2>&1)
  [[ $limit == 100663296 ]] ||
    fail_because "update --memory 96m: the cgroup's limit is [$limit], not 100663296" || return 1
  soft_limit_unset "$pid" "a container updated without --memory-reservation"
}

s_stop() {
  local start=$SECONDS
  x stop -t 10 "$LONG"
  ((RC == 0)) || fail_because "stop: $(got)" || return 1
  ((SECONDS - start < 8)) ||
    fail_because "stop took $((SECONDS - start))s: SIGTERM did not stop it, SIGKILL did" || return 1
  x container inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$LONG"
  expect_out "exited 0" "after stop, status and exit code"
}

s_rm() {
  x rm "$LONG"
  ((RC == 0)) || fail_because "rm: $(got)" || return 1
  [[ -z $(state "$LONG") ]] || fail_because "rm: the container is still there"
}

s_kill() {
  local name=${CTR_PREFIX}-kill
  x run -d --name "$name" "${RUNF[@]}" "$IMAGE" sleep 300
  ((RC == 0)) || fail_because "run -d sleep: $(got)" || return 1
  x kill "$name"
  ((RC == 0)) || fail_because "kill: $(got)" || return 1
  wait_state "$name" exited 10 ||
    fail_because "kill: status is [$(state "$name")], not exited" || return 1
  x container inspect -f '{{.State.ExitCode}}' "$name"
  expect_out 137 "exit code after kill (SIGKILL)" || return 1
  x rm "$name"
  expect_rc 0 "rm after kill"
}

s_tty() {
  xtty run -it --rm "${RUNF[@]}" "$IMAGE" tty
  if ((RC == 0)) && [[ $OUT =~ /dev/pts/[0-9]+ ]]; then
    return 0
  fi
  fail_because "run -it tty: expected /dev/pts/N, got $(got)"
}

s_memory() {
  x run --rm --memory 64m "${RUNF[@]}" "$IMAGE" sh -c \
    'cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max'
  expect_out 67108864 "--memory 64m, read inside the container"
}

# The container's /sys/fs/cgroup/<controller> must be its own cgroup, the one
# /proc/self/cgroup names, in every hierarchy, every time. Ten runs, because
# a runtime that mounts /sys/fs/cgroup before it has joined its cgroups gets
# it right most of the time (it binds the cgroup of its caller: conmon's,
# the shim's).
CGROUP_VIEW='
for line in $(cat /proc/self/cgroup); do
  rest=${line#*:}; ctrl=${rest%%:*}; path=${rest#*:}
  [ -n "$ctrl" ] || continue
  dir=/sys/fs/cgroup/${ctrl#name=}
  root=$(awk -v m="$dir" "\$5 == m { print \$4 }" /proc/self/mountinfo)
  [ -n "$root" ] || continue
  [ "$root" = "$path" ] || echo "$dir is $root, but /proc/self/cgroup says $path"
done
echo checked'
s_cgroup_view() {
  local i
  for ((i = 1; i <= 10; i++)); do
    x run --rm "${RUNF[@]}" "$IMAGE" sh -c "$CGROUP_VIEW"
    expect_out checked "run $i of 10, /sys/fs/cgroup against /proc/self/cgroup" || return 1
  done
}

s_read_only() {
  x run --rm --read-only "${RUNF[@]}" "$IMAGE" touch /x
  if ((RC != 0)) && [[ "$OUT $ERR" == *"Read-only file system"* ]]; then
    return 0
  fi
  fail_because "--read-only touch /x: expected 'Read-only file system', got $(got)"
}

s_user() {
  x run --rm -u 1000:1000 "${RUNF[@]}" "$IMAGE" sh -c 'echo $(id -u):$(id -g)'
  expect_out 1000:1000 "-u 1000:1000"
}

s_workdir() {
  x run --rm -w /tmp "${RUNF[@]}" "$IMAGE" pwd
  expect_out /tmp "-w /tmp pwd"
}

s_env() {
  x run --rm -e FOO=bar "${RUNF[@]}" "$IMAGE" sh -c 'echo $FOO'
  expect_out bar "-e FOO=bar"
}

# A command that cannot be run: both clients turn the runtime's create error
# into 127 (not found) or 126 (not executable) by matching runc's wording,
# and show the runtime's message.
create_error() { # WANT_RC WANT_TEXT CMD
  x run --rm "${RUNF[@]}" "$IMAGE" "$3"
  expect_rc "$1" "run $3" || return 1
  [[ $ERR == *"$2"* ]] ||
    fail_because "run $3: stderr lacks the runtime's message [$2]: $(got)"
}
s_missing_command() { create_error 127 '"nonexistent-cmd": executable file not found in $PATH' nonexistent-cmd; }
s_missing_path() { create_error 127 'no such file or directory' /no/such/file; }
s_not_executable() { create_error 126 'permission denied' /etc/passwd; }

# In order: the -d container is made by `detach` and used up to `rm`.
USES_DETACHED=(exec exec-exit-code exec-options exec-tty exec-missing top cgroup-defaults pause update stop rm)
SCENARIOS=(
  run-rm exit-code
  detach "${USES_DETACHED[@]}"
  kill tty memory cgroup-view read-only user workdir env
  missing-command missing-path not-executable
)

# selected NAME: whether to run NAME (all, or those in ONLY, plus `detach`
# when one of them needs its container).
selected() {
  local n
  ((${#ONLY[@]})) || return 0
  [[ " ${ONLY[*]} " == *" $1 "* ]] && return 0
  if [[ $1 == detach ]]; then
    for n in "${ONLY[@]}"; do
      [[ " ${USES_DETACHED[*]} " == *" $n "* ]] && return 0
    done
  fi
  return 1
}

run_scenarios() {
  local name passed
  for name in "${SCENARIOS[@]}"; do
    selected "$name" || continue
    WHY=
    passed=
    if [[ " ${USES_DETACHED[*]} " == *" $name "* && " ${FAILED_NAMES[*]} " == *" detach "* ]]; then
      WHY="needs the container of \`detach\`, which failed"
    elif "s_${name//-/_}"; then
      passed=1
    fi
    if [[ -n $passed ]]; then
      printf 'ok %s\n' "$name"
      PASSED=$((PASSED + 1))
    else
      printf 'FAIL %s: %s\n' "$name" "${WHY:-failed}"
      FAILED=$((FAILED + 1))
      FAILED_NAMES+=("$name")
    fi
  done
  # The shared container may be left by a failed stop or rm.
  [[ -n $(state "$LONG") ]] && x rm -f "$LONG"
  printf '%d passed, %d failed\n' "$PASSED" "$FAILED"
  ((FAILED == 0))
}

# --- teardown helpers for the drivers ------------------------------------------

# pids_of_ours DIR CGROUP_PARENT: the processes our private client instance
# left: those whose command line names DIR (daemons, conmons, shims) and those
# in our cgroup parent (containers).
pids_of_ours() {
  local p f
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [[ $p == "$$" || $p == "$BASHPID" ]] && continue
    if tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | grep -qF -- "$1"; then
      echo "$p"
    fi
  done
  while read -r f; do
    cat "$f" 2>/dev/null
  done < <(find /sys/fs/cgroup -maxdepth 5 -path "*$2/*" -name cgroup.procs 2>/dev/null)
}

# sockets_of PID...: the paths of the unix sockets these processes hold that
# live outside any directory of ours: containerd-shim-runc-v2 listens on
# /run/containerd/s/<hash> (a fixed directory) and, when it is killed,
# leaves the socket file behind.
sockets_of() {
  local p fd inodes=()
  for p in "$@"; do
    for fd in /proc/"$p"/fd/*; do
      fd=$(readlink "$fd" 2>/dev/null) || continue
      [[ $fd == socket:\[*\] ]] && inodes+=("${fd//[^0-9]/}")
    done
  done
  ((${#inodes[@]})) || return 0
  awk -v list=" ${inodes[*]} " 'index(list, " " $7 " ") && $8 ~ "^/run/containerd/s/" { print $8 }' /proc/net/unix
}

# release_private DIR CGROUP_PARENT: kill (by pid) what is left of ours,
# unmount what is mounted under DIR, remove our cgroups and DIR.
release_private() {
  local pids m i socks=()
  for i in 1 2 3; do
    pids=$(pids_of_ours "$1" "$2" | sort -u)
    [[ -n $pids ]] || break
    # shellcheck disable=SC2086 # a list of pids
    mapfile -t -O "${#socks[@]}" socks < <(sockets_of $pids)
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null
    sleep 0.5
  done
  ((${#socks[@]} == 0)) || rm -f -- "${socks[@]}"
  # Deepest first; lazily, as a dead container's mounts may still be busy.
  for i in 1 2 3; do
    m=$(awk -v t="$1/" 'index($5, t) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
    [[ -n $m ]] || break
    while read -r i; do umount -l "$i" 2>/dev/null; done <<<"$m"
  done
  # Our cgroup parent in every hierarchy; rmdir only removes empty cgroups.
  while read -r m; do
    find "$m" -depth -type d -exec rmdir {} + 2>/dev/null
  done < <(find /sys/fs/cgroup -maxdepth 3 -type d -path "*$2" -prune 2>/dev/null)
  rm -rf --one-file-system "$1"
}

# What both run.sh share. The caller sets CLIENT (podman or docker) first.
usage() {
  sed -n '3,/^set /{/^set /d;s/^# \{0,1\}//p}' "$0"
  exit "${1:-0}"
}
die() {
  printf 'integration/%s: error: %s\n' "$CLIENT" "$*" >&2
  exit 1
}
# apt_install PKG...: install Debian packages; `apt-get update` only if the
# first try fails (a fresh machine has no package lists).
apt_install() {
  printf 'integration/%s: installing %s\n' "$CLIENT" "$*" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1 || {
    apt-get update -qq >/dev/null &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  } || die "apt-get install $* failed"
}

# client_setup ARGS...: the command line both run.sh take (--runtime PATH
# [SCENARIO...]), checked; sets `runtime` and `ONLY`.
client_setup() {
  runtime=
  ONLY=()
  while (($#)); do
    case $1 in
      --runtime)
        [[ $# -ge 2 ]] || die "--runtime needs a path"
        runtime=$2
        shift 2
        ;;
      --runtime=*)
        runtime=${1#--runtime=}
        shift
        ;;
      -h | --help) usage 0 ;;
      -*) die "unknown option $1 (usage: $0 --runtime PATH [SCENARIO...])" ;;
      *)
        ONLY+=("$1")
        shift
        ;;
    esac
  done
  [[ -n $runtime ]] || die "usage: $0 --runtime PATH [SCENARIO...]"
  [[ $(id -u) -eq 0 ]] || die "must run as root (it creates real containers)"
  local found
  found=$(command -v "$runtime") || die "runtime not found: $runtime"
  runtime=$(readlink -f "$found")
  [[ -x $runtime ]] || die "runtime is not executable: $runtime"
  local s
  for s in "${ONLY[@]}"; do
    [[ " ${SCENARIOS[*]} " == *" $s "* ]] || die "unknown scenario $s (known: ${SCENARIOS[*]})"
  done
}
