#!/bin/busybox sh
# /init of the rig's L1: load KVM, build a root from the host's read-only directories, switch
# to it and serve commands on ttyS1 (agent.sh). Lines starting with VIREO-L1 on the console
# tell the host how far boot got.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
up() { cut -d' ' -f1 /proc/uptime; }
say() { echo "VIREO-L1 $*"; }
die() { say "fatal=$1 detail=$2"; sync; poweroff -f; sleep 60; }
say "stage=init uptime=$(up)"

while read -r m; do
  [ -n "$m" ] || continue
  if ! out=$(insmod "/lib/vireo-modules/$m.ko" 2>&1); then
    say "error=insmod module=$m detail=$out"
    case "$m" in kvm|kvm_amd|irqbypass|ccp) die no-kvm "insmod $m failed: $out; dmesg: $(dmesg | grep -i -E 'kvm|svm|ccp' | tail -n 5 | tr '\n' '|')";; esac
  fi
done < /etc/vireo/modules
say "stage=modules uptime=$(up)"

[ -c /dev/kvm ] || die no-kvm "/dev/kvm missing after loading kvm_amd; dmesg: $(dmesg | grep -i -E 'kvm|svm' | tail -n 5 | tr '\n' '|')"
npt=0; dmesg | grep -q 'Nested Paging enabled' && npt=1
nested=0; dmesg | grep -q 'Nested Virtualization enabled' && nested=1
[ "$npt" = 1 ] || die no-npt "kvm_amd loaded without nested paging; dmesg: $(dmesg | grep -i -E 'kvm|svm' | tail -n 5 | tr '\n' '|')"

# The command environment is a real root, not a chroot: the kernel refuses user namespaces
# (passt, bwrap, unshare -U) to a chrooted process, and passt's sandbox needs pivot_root. So:
# a tmpfs root with the host's read-only directories mounted in, then switch_root into it,
# where the agent (its own busybox under /.vireo) serves commands as PID 1.
R=/newroot
mkdir -p $R
mount -t tmpfs -o mode=0755 vireo-root $R || die root "cannot mount the tmpfs root"
mkdir -p $R/proc $R/sys $R/dev $R/tmp $R/run $R/var/tmp $R/root
chmod 1777 $R/tmp $R/var/tmp
while read -r tag cache path; do
  [ -n "$tag" ] || continue
  mkdir -p "$R$path"
  mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=$cache "$tag" "$R$path" || die share "cannot mount 9p $tag at $path"
done < /etc/vireo/shares
while read -r link target; do
  [ -n "$link" ] || continue
  ln -s "$target" "$R/$link"
done < /etc/vireo/links
cp -a /.vireo $R/.vireo || die root "cannot copy the agent into the new root"
mount --move /dev $R/dev
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts devpts $R/dev/pts
mount -t tmpfs tmpfs $R/dev/shm
say "stage=shares uptime=$(up)"

# Networking for user-mode network daemons (passt wants an interface with a default route):
# a dummy interface, so nothing leaves L1; loopback for the tests.
ip link set lo up
if ip link set dummy0 up 2>/dev/null; then
  ip addr add 10.0.2.15/24 dev dummy0
  ip route add default via 10.0.2.2 dev dummy0
fi
# Root needs neither, but passt drops to nobody before it unshares.
[ -w /proc/sys/kernel/unprivileged_userns_clone ] && echo 1 > /proc/sys/kernel/unprivileged_userns_clone
[ "$(cat /proc/sys/user/max_user_namespaces 2>/dev/null)" = 0 ] && echo 1000 > /proc/sys/user/max_user_namespaces

say "stage=switch uptime=$(up)"
mount --move /proc $R/proc
mount --move /sys $R/sys
exec switch_root $R /.vireo/busybox sh /.vireo/agent.sh
die root "switch_root failed"
