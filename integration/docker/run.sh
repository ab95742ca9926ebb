#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# integration/docker/run.sh --runtime PATH [SCENARIO...]
#
# Runs real containers with Docker on the OCI runtime at PATH (brig, or
# /usr/sbin/runc to check the scenarios themselves). Starts a private dockerd
# (Debian's docker.io) with its own data root, exec root, unix socket, pid
# file, config file and cgroup parent, no iptables, no bridge, no ip
# forwarding, and PATH registered as its default runtime (--add-runtime), so
# containerd-shim-runc-v2 drives it as it drives runc. /var/lib/docker,
# /run/docker.sock and /etc/docker/daemon.json are never used.
# Installs docker.io if dockerd is missing. Prints `ok NAME` or
# `FAIL NAME: why` per scenario, then `N passed, N failed`; exits 1 if any
# failed. dockerd and everything it started are stopped, by pid, on exit.
# See integration/docker/README.md.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=../podman/scenarios.sh disable=SC1091
. "$here/../podman/scenarios.sh"

CLIENT=docker
client_setup "$@"
command -v dockerd >/dev/null || apt_install docker.io
command -v script >/dev/null || apt_install bsdutils
[[ -f /usr/bin/busybox ]] || [[ -f /bin/busybox ]] || apt_install busybox-static
# The client that came with this dockerd: another `docker` earlier on PATH
# (a newer CLI) would have to negotiate the API down.
docker=/usr/bin/docker
[[ -x $docker ]] || docker=$(command -v docker) || die "no docker client"

T=$(mktemp -d /tmp/brig-docker.XXXXXX)
chmod 711 "$T"
CGROUP_PARENT=/brig-docker-test-${T##*.}
WORK=$T/work
mkdir -p "$WORK" "$T/data" "$T/exec"
dockerd_pid=
# dockerd makes /run/docker/plugins (a fixed path) for plugin sockets: it is
# removed at the end if this run made it and it is still empty.
made_run_docker=
[[ -e /run/docker ]] || made_run_docker=1

teardown() {
  local rc=$? i ids
  # A second Ctrl-C must not cut the cleanup short; a trap (not an
  # ignore) leaves the commands run below killable as usual.
  trap - EXIT
  trap : INT TERM
  if [[ -n $dockerd_pid ]] && kill -0 "$dockerd_pid" 2>/dev/null; then
    ids=$(timeout 20 "${CLI[@]}" ps -aq 2>/dev/null)
    # shellcheck disable=SC2086 # a list of ids
    [[ -z $ids ]] || timeout 60 "${CLI[@]}" rm -f $ids >/dev/null 2>&1
    # dockerd stops its containerd on SIGTERM.
    kill -TERM "$dockerd_pid" 2>/dev/null
    for ((i = 0; i < 200; i++)); do
      kill -0 "$dockerd_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$dockerd_pid" 2>/dev/null
    wait "$dockerd_pid" 2>/dev/null
  fi
  # containerd, shims and containers that outlived dockerd.
  release_private "$T" "$CGROUP_PARENT"
  if [[ -n $made_run_docker ]]; then
    rmdir /run/docker/plugins /run/docker 2>/dev/null
  fi
  exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the private dockerd ------------------------------------------------------

# The trust key dockerd 20.10 makes would go to /etc/docker/key.json.
printf '{"deprecated-key-path": "%s/key.json"}\n' "$T" >"$T/daemon.json"
sock=$T/docker.sock
# The client keeps its own config (~/.docker) here too.
export DOCKER_CONFIG=$T/client
dockerd \
  --config-file "$T/daemon.json" \
  --data-root "$T/data" \
  --exec-root "$T/exec" \
  --pidfile "$T/dockerd.pid" \
  -H "unix://$sock" \
  --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
  --bridge=none \
  --exec-opt native.cgroupdriver=cgroupfs \
  --cgroup-parent "$CGROUP_PARENT" \
  --add-runtime "brig-test-runtime=$runtime" \
  --default-runtime brig-test-runtime \
  >"$T/dockerd.log" 2>&1 </dev/null &
dockerd_pid=$!

# What scenarios.sh reads (see there):
# shellcheck disable=SC2034
{
  CLIENT=docker
  CLI=("$docker" -H "unix://$sock")
  RUNF=(--network none --runtime brig-test-runtime)
  IMAGE=brig-busybox:test
}

up=
for ((i = 0; i < 300; i++)); do
  if ! kill -0 "$dockerd_pid" 2>/dev/null; then
    printf 'FAIL dockerd: dockerd exited while starting; the end of its log:\n'
    tail -n 15 "$T/dockerd.log" | sed 's/^/  /'
    printf '0 passed, 1 failed\n'
    exit 1
  fi
  if [[ -S $sock ]] && "${CLI[@]}" version >/dev/null 2>&1; then
    up=1
    break
  fi
  sleep 0.1
done
if [[ -z $up ]]; then
  printf 'FAIL dockerd: not answering on %s after 30s; the end of its log:\n' "$sock"
  tail -n 15 "$T/dockerd.log" | sed 's/^/  /'
  printf '0 passed, 1 failed\n'
  exit 1
fi

printf '# docker %s (containerd %s), runtime %s (%s)\n' \
  "$("${CLI[@]}" version -f '{{.Server.Version}}' 2>/dev/null)" \
  "$(containerd --version 2>/dev/null | awk '{print $3}')" \
  "$runtime" "$("$runtime" --version 2>/dev/null | head -n1)"

"$repo/hack/mkrootfs" "$repo/.cache/rootfs" || die "hack/mkrootfs failed"
tar -C "$repo/.cache/rootfs" -cf "$T/rootfs.tar" . || die "tar of the rootfs failed"
x import --change 'CMD ["sh"]' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  "$T/rootfs.tar" "$IMAGE"
((RC == 0)) || die "docker import failed: $(got)"

run_scenarios
