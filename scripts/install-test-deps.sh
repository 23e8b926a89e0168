#!/usr/bin/env bash
# Installs the system packages the test suite needs (Debian/Ubuntu, as root). Idempotent and quick when
# everything is already there. The tests use the real tools as oracles:
#   mdevctl           - the reference implementation vgpuctl must agree with (run in a chroot)
#   util-linux        - unshare/mount for the private mount namespace around that chroot
#   ansible-core      - runs the contrib/ansible example against a simulated host
set -euo pipefail

packages=(mdevctl util-linux ansible-core)
commands=(mdevctl unshare ansible-playbook)

missing=()
for c in "${commands[@]}"; do
  command -v "$c" >/dev/null 2>&1 || missing+=("$c")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-test-deps: all test tools present (${commands[*]})"
  exit 0
fi

echo "install-test-deps: missing ${missing[*]}; installing ${packages[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "install-test-deps: need root to apt-get install ${packages[*]}; run: sudo $0" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}"
for c in "${commands[@]}"; do
  command -v "$c" >/dev/null 2>&1 || { echo "install-test-deps: $c still missing after install" >&2; exit 1; }
done
