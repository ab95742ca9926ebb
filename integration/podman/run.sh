#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# integration/podman/run.sh --runtime PATH [SCENARIO...]
#
# Runs real containers with podman on the OCI runtime at PATH (brig, or
# /usr/sbin/runc to check the scenarios themselves), in a private podman:
# storage, run and tmp dirs, events, locks and network config all live in one
# temporary directory, with a private containers.conf (CONTAINERS_CONF) and
# storage.conf, the cgroupfs manager, and one private cgroup parent.
# /var/lib/containers, /run/containers and /etc/containers are never used.
# Installs podman (Debian's) if it is missing. Prints `ok NAME` or
# `FAIL NAME: why` per scenario, then `N passed, N failed`; exits 1 if any
# failed. Everything it started is stopped, by pid, and removed on exit.
# See integration/podman/README.md.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=scenarios.sh disable=SC1091
. "$here/scenarios.sh"

CLIENT=podman
client_setup "$@"
command -v podman >/dev/null || apt_install podman
command -v script >/dev/null || apt_install bsdutils
[[ -f /usr/bin/busybox ]] || [[ -f /bin/busybox ]] || apt_install busybox-static

T=$(mktemp -d /tmp/brig-podman.XXXXXX)
chmod 711 "$T"
CGROUP_PARENT=/brig-podman-test-${T##*.}
WORK=$T/work
mkdir -p "$WORK" "$T/tmp" "$T/net.d"

# --- teardown: runs on every exit --------------------------------------------

teardown() {
  local rc=$?
  # A second Ctrl-C must not cut the cleanup short; a trap (not an
  # ignore) leaves the commands run below killable as usual.
  trap - EXIT
  trap : INT TERM
  # Ask podman first, then kill by pid whatever is left of ours.
  if [[ -n ${CLI+set} ]]; then
    timeout 60 "${CLI[@]}" rm -af -t 0 >/dev/null 2>&1
  fi
  release_private "$T" "$CGROUP_PARENT"
  exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the private podman --------------------------------------------------------

# CAP_SYS_RESOURCE may be missing (it is in this VM's bounding set), and then
# podman's default rlimits for root (nofile 1048576, nproc to the max) cannot
# be set by any runtime: the defaults are lowered to what we have.
nofile=$(ulimit -Hn)
if [[ $nofile == unlimited ]] || ((nofile > 1024)); then
  nofile=1024
fi
nproc=$(ulimit -Hu)
if [[ $nproc == unlimited ]] || ((nproc > 4096)); then
  nproc=4096
fi
cat >"$T/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
netns = "none"
log_driver = "k8s-file"

[network]
network_config_dir = "$T/net.d"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$T/events.log"
lock_type = "file"
tmp_dir = "$T/tmp"
static_dir = "$T/root/libpod"
volume_path = "$T/root/volumes"
EOF
cat >"$T/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$T/root"
runroot = "$T/run"
EOF
export CONTAINERS_CONF=$T/containers.conf CONTAINERS_STORAGE_CONF=$T/storage.conf
export TMPDIR=$T/tmp
# The runtime keeps its state in its default root (/run/brig, /run/runc):
# podman's cleanup process does not pass --runtime-flag on, so a private
# --root would leave every container's state behind.
# What scenarios.sh reads (see there):
# shellcheck disable=SC2034
{
  CLIENT=podman
  CLI=(podman --root "$T/root" --runroot "$T/run" --tmpdir "$T/tmp"
    --cgroup-manager cgroupfs --events-backend file --network-config-dir "$T/net.d"
    --runtime "$runtime")
  RUNF=(--network none --cgroup-parent "$CGROUP_PARENT")
  IMAGE=localhost/brig-busybox:test
}

printf '# podman %s, runtime %s (%s)\n' "$(podman --version | awk '{print $3}')" \
  "$runtime" "$("$runtime" --version 2>/dev/null | head -n1)"

"$repo/hack/mkrootfs" "$repo/.cache/rootfs" || die "hack/mkrootfs failed"
tar -C "$repo/.cache/rootfs" -cf "$T/rootfs.tar" . || die "tar of the rootfs failed"
# An image copy (import, load, pull) keeps a blob-info cache that
# containers/image puts in /var/lib/containers/cache for root, with no podman
# flag to move it: the import runs in a private mount namespace where /var/lib
# and /var/cache are empty tmpfs, so the host's are never touched.
RC=0
unshare --mount --propagation private sh -c \
  'mount -t tmpfs tmpfs /var/lib && mount -t tmpfs tmpfs /var/cache && exec "$@"' sh \
  "${CLI[@]}" import --change 'CMD ["sh"]' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  "$T/rootfs.tar" "$IMAGE" >"$WORK/out" 2>&1 || RC=$?
((RC == 0)) || die "podman import failed: $(tr '\n' ' ' <"$WORK/out")"

run_scenarios
