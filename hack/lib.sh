# shellcheck shell=bash
# Helpers shared by the hack/ scripts. Source it; it is not a command.
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# Sets REPO (the repository root) and puts cargo on PATH if rustup installed it
# under ~/.cargo/bin but the caller's PATH lacks it (as in a bare CI shell).

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export REPO
ROOTFS=$REPO/.cache/rootfs
export ROOTFS

if ! command -v cargo >/dev/null 2>&1 && [[ -x ${HOME:-/root}/.cargo/bin/cargo ]]; then
  PATH=${HOME:-/root}/.cargo/bin:$PATH
  export PATH
fi

_hack_name=hack/$(basename "$0")

log() { printf '%s: %s\n' "$_hack_name" "$*" >&2; }
die() {
  printf '%s: error: %s\n' "$_hack_name" "$*" >&2
  exit 1
}

need_root() {
  [[ $(id -u) -eq 0 ]] || die "must run as root (${1:-it creates real containers}); try: sudo $_hack_name"
}

# ensure_pkgs PKG...: install the Debian packages that are missing.
# `apt-get update` runs only when something is missing, and at most once.
_apt_updated=
ensure_pkgs() {
  local missing=() p
  for p in "$@"; do
    [[ $(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null) == ii* ]] || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  [[ $(id -u) -eq 0 ]] || die "missing Debian packages (${missing[*]}); run as root to install them"
  local out
  out=$(mktemp)
  # Another apt (an unattended upgrade, a second setup) may hold the dpkg
  # or lists lock: wait for it rather than fail at once.
  local wait=(-o DPkg::Lock::Timeout=600)
  if [[ -z $_apt_updated ]]; then
    log "apt-get update (missing: ${missing[*]})"
    apt-get "${wait[@]}" update -qq >"$out" 2>&1 || {
      cat "$out" >&2
      rm -f "$out"
      die "apt-get update failed"
    }
    _apt_updated=1
  fi
  log "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get "${wait[@]}" install -y -qq --no-install-recommends "${missing[@]}" >"$out" 2>&1 || {
    cat "$out" >&2
    rm -f "$out"
    die "apt-get install ${missing[*]} failed"
  }
  rm -f "$out"
}
