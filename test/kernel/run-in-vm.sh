#!/bin/sh
# run-in-vm.sh 'shell command': runs the command as root inside the VM built by setup-vm.sh, with the
# host's / as a read-only lower layer (writes are thrown away), the caller's PATH and working directory.
# Prints the command's output and exits with its exit code; 98 when the VM cannot run, 99 when it hung.
W=${W:-/var/tmp/vgpuctl-kernel-vm}
command -v qemu-system-x86_64 >/dev/null 2>&1 || { echo "run-in-vm: qemu-system-x86_64 is not installed (test/kernel/setup-vm.sh installs it)"; exit 98; }
[ -s "$W/vmlinuz" ] && [ -s "$W/initrd.gz" ] || { echo "run-in-vm: no VM in $W: run test/kernel/setup-vm.sh first"; exit 98; }
X=$(mktemp -d /tmp/vgpuctl-vm.XXXXXX)
{ printf 'export PATH="%s" MDEVVM_XCHG=/xchg\ncd "%s" || exit 97\n' "$PATH" "$PWD"; printf '%s\n' "$1"; } > "$X/cmd.sh"
timeout "${VGPUCTL_VM_TIMEOUT:-300}" qemu-system-x86_64 -accel tcg -m "${VGPUCTL_VM_MEM:-1536}" -smp 1 -nographic -no-reboot \
  -kernel "$W/vmlinuz" -initrd "$W/initrd.gz" -append "console=ttyS0 panic=-1 quiet loglevel=3" \
  -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
  -virtfs local,path="$X",mount_tag=xchg,security_model=none > "$X/console.log" 2>&1
if [ ! -f "$X/rc" ]; then echo "run-in-vm: the VM did not finish within ${VGPUCTL_VM_TIMEOUT:-300} s; console tail:"; tail -30 "$X/console.log"; rm -rf "$X"; exit 99; fi
cat "$X/output.log"; rc=$(cat "$X/rc"); rm -rf "$X"; exit "$rc"
