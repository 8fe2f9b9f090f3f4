#!/bin/busybox sh
# /init of the rig's L1: load KVM, share the host's read-only directories into a chroot, then
# serve commands on ttyS1. Lines starting with VIREO-L1 on the console tell the host how far
# boot got.
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

R=/newroot
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
mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mount -t devtmpfs devtmpfs $R/dev
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts devpts $R/dev/pts
mount -t tmpfs tmpfs $R/dev/shm
say "stage=shares uptime=$(up)"

# Keep ttyS1 open from here on: input that arrives while no one has the tty open is lost.
exec 3<>/dev/ttyS1
stty raw -echo <&3 || die agent "cannot set ttyS1 raw"
say "stage=ready uptime=$(up) kvm=1 npt=$npt nested=$nested"
echo "VIREO-L1-READY uptime=$(up) npt=$npt nested=$nested" >&3

# The agent: "VIREO-RIG-BEGIN id timeout_s", script lines, "VIREO-RIG-END id"; answers with the
# script's output and "VIREO-RIG-EXIT id rc". Each command runs in its own session so the
# watchdog can kill everything it started.
while IFS= read -r line <&3; do
  case "$line" in
    "VIREO-RIG-BEGIN "*)
      set -- $line
      id=$2; tmo=$3
      f=/tmp/.vireo-cmd-$id.sh
      : > "$R$f"
      while IFS= read -r l <&3; do
        [ "$l" = "VIREO-RIG-END $id" ] && break
        printf '%s\n' "$l" >> "$R$f"
      done
      say "agent=start id=$id timeout=$tmo"
      echo "VIREO-RIG-START $id" >&3
      setsid chroot $R /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        /bin/sh "$f" </dev/null >&3 2>&3 &
      pid=$!
      ( sleep "$tmo"; echo "VIREO-RIG-TIMEOUT $id" >&3; kill -s KILL -"$pid" ) &
      wd=$!
      wait "$pid"; rc=$?
      kill "$wd" 2>/dev/null
      rm -f "$R$f"
      say "agent=exit id=$id rc=$rc"
      echo "VIREO-RIG-EXIT $id $rc" >&3
      ;;
    "VIREO-RIG-PING "*)
      echo "VIREO-RIG-PONG ${line#VIREO-RIG-PING } uptime=$(up)" >&3
      ;;
  esac
done
die agent "ttyS1 closed"
