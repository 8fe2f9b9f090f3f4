#!/bin/busybox sh
# /init of the rig's L2 test guest: mount the basics, load the virtio modules, run
# /scenario.sh (appended per run), report on the console, power off.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /tmp /run
mount -t devpts devpts /dev/pts
up() { cut -d' ' -f1 /proc/uptime; }
echo "VIREO-L2-INIT uptime=$(up)"
while read -r m; do
  [ -n "$m" ] || continue
  out=$(insmod "/lib/vireo-modules/$m.ko" 2>&1) || echo "VIREO-RESULT name=insmod-$m status=fail detail=$out"
done < /etc/vireo/modules
echo "VIREO-L2-MODULES uptime=$(up)"
. /lib/vireo/lib.sh
if [ -f /scenario.sh ]; then
  ( . /scenario.sh )
  rc=$?
else
  echo "VIREO-RESULT name=scenario status=fail detail=no /scenario.sh in the initramfs"
  rc=127
fi
echo "VIREO-DONE rc=$rc uptime=$(up)"
sync
poweroff -f
