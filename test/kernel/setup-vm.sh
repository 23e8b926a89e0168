#!/usr/bin/env bash
# Builds the throw-away VM for the real-kernel tests: Debian's own kernel with vfio/mdev, the kernel's
# sample mdev drivers (mtty, mdpy, mbochs) built out of tree from the matching linux-source, and a busybox
# initramfs that mounts the host's / read-only (9p) under a tmpfs overlay and runs one command as root.
# Adapted from shared/kernel-vm. Root, Debian 12, apt. Idempotent: a finished build is reused.
#   W=/var/tmp/vgpuctl-kernel-vm test/kernel/setup-vm.sh
set -euo pipefail
W=${W:-/var/tmp/vgpuctl-kernel-vm}
die() { echo "setup-vm: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (apt-get, building modules)"
command -v apt-get >/dev/null || die "needs a Debian system with apt-get"

# The kernel version is pinned to what this machine's package lists call linux-image-amd64, and image,
# headers and source are all taken at exactly that version (a mismatch makes insmod refuse the samples).
V=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/.*Depends: linux-image-//p' | head -n1)
[ -n "$V" ] || { apt-get update -qq; V=$(apt-cache depends linux-image-amd64 | sed -n 's/.*Depends: linux-image-//p' | head -n1); }
[ -n "$V" ] || die "cannot find the linux-image-amd64 version (apt-get update?)"
PV=$(apt-cache show --no-all-versions "linux-image-$V" | sed -n 's/^Version: //p' | head -n1)
SRC=linux-source-${V%%.0-*}
# Bump HARNESS when the initramfs below changes, so cached VMs are rebuilt.
HARNESS=2
STAMP="$V $PV harness-$HARNESS"
if [ -f "$W/stamp" ] && [ "$(cat "$W/stamp")" = "$STAMP" ] && [ -s "$W/vmlinuz" ] && [ -s "$W/initrd.gz" ]; then
  echo "setup-vm: reusing $W ($STAMP)"; exit 0
fi
rm -rf "$W"; mkdir -p "$W/deb" "$W/kroot" "$W/ko"; cd "$W"
echo "setup-vm: kernel $V ($PV)"
DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -q --no-install-recommends \
  qemu-system-x86 busybox-static cpio gcc make "linux-headers-$V" >/dev/null
(cd deb && timeout 600 apt-get download -q "linux-image-$V=$PV" "$SRC=$PV" 2>&1 | grep -v unsandboxed || true)
ls deb/linux-image-"${V}"_*.deb deb/"${SRC}"_*.deb >/dev/null || die "kernel packages did not download"
K=lib/modules/$V/kernel
dpkg-deb --fsys-tarfile deb/linux-image-"${V}"_*.deb | tar -x -C kroot --wildcards './boot/vmlinuz-*' \
  "./$K/drivers/vfio/*" "./$K/drivers/virtio/*" "./$K/net/9p/*" "./$K/fs/9p/*" "./$K/fs/netfs/*" \
  "./$K/fs/fscache/*" "./$K/fs/overlayfs/*"
dpkg-deb --fsys-tarfile deb/"${SRC}"_*.deb | tar -xO "./usr/src/$SRC.tar.xz" | \
  tar -xJ -C ko --strip-components=3 --wildcards "$SRC/samples/vfio-mdev/*"
echo 'obj-m += mtty.o mdpy.o mbochs.o' > ko/Kbuild
make -s -C "/usr/src/linux-headers-$V" M="$W/ko" modules 2>&1 | grep -v 'Skipping BTF' || true
for m in mtty mdpy mbochs; do [ -f "ko/$m.ko" ] || die "building the sample driver $m failed"; done
I=$(mktemp -d); mkdir -p "$I"/{bin,proc,sys,dev,lower,rw,host,xchg,mods}
cp /bin/busybox "$I/bin/"; for a in sh mount insmod cat mkdir chroot poweroff; do ln -s busybox "$I/bin/$a"; done
for m in drivers/vfio/vfio drivers/vfio/mdev/mdev drivers/vfio/vfio_iommu_type1 drivers/virtio/virtio_ring \
  drivers/virtio/virtio drivers/virtio/virtio_pci_legacy_dev drivers/virtio/virtio_pci_modern_dev \
  drivers/virtio/virtio_pci fs/netfs/netfs fs/fscache/fscache net/9p/9pnet net/9p/9pnet_virtio fs/9p/9p \
  fs/overlayfs/overlay; do
  if [ -f "kroot/$K/$m.ko" ]; then cp "kroot/$K/$m.ko" "$I/mods/"; basename "$m" >> "$I/mods/order"; fi
done
for m in mtty mdpy mbochs; do cp "ko/$m.ko" "$I/mods/"; echo "$m" >> "$I/mods/order"; done
cat > "$I/init" <<'EOI'
#!/bin/sh
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs dev /dev
for m in $(cat /mods/order); do insmod /mods/$m.ko || echo "insmod $m FAILED"; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose hostroot /lower
mount -t 9p -o trans=virtio,version=9p2000.L xchg /xchg
mount -t tmpfs tmpfs /rw; mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /host
for d in proc sys dev; do mount --bind /$d /host/$d; done
mkdir -p /host/xchg; mount --bind /xchg /host/xchg
chroot /host /bin/sh -c 'cd /xchg && HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin sh ./cmd.sh' >/xchg/output.log 2>&1
echo $? > /xchg/rc; sync; poweroff -f
EOI
chmod +x "$I/init"; (cd "$I" && find . | cpio -o -H newc 2>/dev/null | gzip -1) > "$W/initrd.gz"; rm -rf "$I"
cp kroot/boot/vmlinuz-"$V" "$W/vmlinuz"
rm -rf "$W/deb" "$W/kroot"   # keep the cache small: only the kernel, the initramfs and the stamp are needed
echo "$STAMP" > "$W/stamp"
echo "setup-vm: built $W/vmlinuz and $W/initrd.gz for $V"
