#!/bin/sh
# /init of the test-bed initramfs (busybox sh). Mounts the host's / read-only
# over 9p with a tmpfs overlay on top, mounts the job share, runs the job in
# that root and leaves its exit code in the job share. Built into the
# initramfs by setup.sh; run.sh writes the job share.
export PATH=/bin

job=/newroot/run/wccl-vm

fail() {
	echo "guest-init: $*" >/dev/console
	[ -d "$job" ] && echo "guest-init: $*" >>"$job/output" && echo 99 >"$job/rc"
	sync
	poweroff -f
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

while read -r m; do
	insmod "/modules/$m" || fail "insmod $m failed"
done </modules/order

p9='trans=virtio,version=9p2000.L,msize=512000'
mount -t 9p -o "ro,$p9,cache=loose" hostroot /lower || fail "cannot mount the host root"
mount -t tmpfs -o mode=0755 tmpfs /rw
mkdir /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot ||
	fail "cannot mount the overlay root"

r=/newroot
mount -t proc proc $r/proc
mount -t sysfs sysfs $r/sys
mount -t devtmpfs devtmpfs $r/dev
mkdir -p $r/dev/pts $r/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts $r/dev/pts
mount -t tmpfs -o mode=1777 tmpfs $r/dev/shm
mount -t tmpfs -o mode=1777 tmpfs $r/tmp
mount -t tmpfs -o mode=0755 tmpfs $r/run
mkdir -p $job
# No page cache on the job share: the host tails the output file live.
mount -t 9p -o "$p9,cache=none" wcclvm $job || fail "cannot mount the job share"

# WCCL_VM_KVER, WCCL_VM_MODDIR, WCCL_VM_MODULES (written by run.sh).
# shellcheck source=/dev/null
. $job/vm.env
mkdir -p $r/lib/modules
ln -sfn "$WCCL_VM_MODDIR" "$r/lib/modules/$WCCL_VM_KVER"
echo /bin/modprobe-chroot >/proc/sys/kernel/modprobe
ip link set lo up

for m in $WCCL_VM_MODULES; do
	chroot $r /sbin/modprobe "$m" >>$job/output 2>&1 || fail "modprobe $m failed"
done

cut -d' ' -f1 /proc/uptime >$job/started
chroot $r /bin/bash /run/wccl-vm/job.sh >>$job/output 2>&1 </dev/null
echo $? >$job/rc.tmp
# Separate file + rename so the host never reads a half-written code.
mv $job/rc.tmp $job/rc
sync
poweroff -f
