#!/usr/bin/env bash
# Installs the system packages the test suite needs (Debian/Ubuntu, as root). Idempotent and quick when
# everything is already there. The tests use the real tools as oracles:
#   mdevctl           - the reference implementation vgpuctl must agree with (run in a chroot)
#   util-linux        - unshare/mount for the private mount namespace around that chroot
#   ansible-core      - runs the contrib/ansible example against a simulated host
#   prometheus        - promtool, which checks the metrics `vgpuctl health -o prometheus` prints
#   python3-nova      - nova's own config parser and driver code, which load the nova.conf vgpuctl generates
#   libvirt-clients   - virt-xml-validate, which checks the <hostdev> elements vgpuctl generates
#   libxml2-utils     - xmllint, which virt-xml-validate runs
# and then builds (or reuses) the real-kernel VM of test/kernel/ (qemu, Debian's kernel, the sample mdev
# drivers); VGPUCTL_SKIP_KERNEL_VM=1 skips that step on a developer machine.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

kernel_vm() {
  if [ "${VGPUCTL_SKIP_KERNEL_VM:-}" = "1" ]; then echo "install-test-deps: kernel VM skipped (VGPUCTL_SKIP_KERNEL_VM=1)"; return 0; fi
  if [ "$(id -u)" -ne 0 ]; then echo "install-test-deps: the kernel VM needs root; its tests will be skipped" >&2; return 0; fi
  bash "$here/../test/kernel/setup-vm.sh"
}

packages=(mdevctl util-linux ansible-core prometheus python3-nova libvirt-clients libxml2-utils)
commands=(mdevctl unshare ansible-playbook promtool virt-xml-validate xmllint python3)
# Python modules that must import with the system's python3 (Debian's packages install there).
python_modules=(nova.conf)

missing=()
for c in "${commands[@]}"; do
  command -v "$c" >/dev/null 2>&1 || missing+=("$c")
done
for m in "${python_modules[@]}"; do
  /usr/bin/python3 -c "import $m" >/dev/null 2>&1 || missing+=("python:$m")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-test-deps: all test tools present (${commands[*]})"
  kernel_vm
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
for m in "${python_modules[@]}"; do
  /usr/bin/python3 -c "import $m" >/dev/null 2>&1 || { echo "install-test-deps: python module $m still missing after install" >&2; exit 1; }
done
kernel_vm
