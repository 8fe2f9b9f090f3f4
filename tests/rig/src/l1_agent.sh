# The rig's command agent, PID 1 of L1 after switch_root (run by /.vireo/busybox sh). It uses
# only its own busybox (/.vireo/bin); commands get the host's userland from /usr.
export PATH=/.vireo/bin
up() { cut -d' ' -f1 /proc/uptime; }
say() { echo "VIREO-L1 $*"; }
die() { say "fatal=$1 detail=$2"; sync; poweroff -f; sleep 60; }

npt=0; dmesg | grep -q 'Nested Paging enabled' && npt=1
nested=0; dmesg | grep -q 'Nested Virtualization enabled' && nested=1

# Keep ttyS1 open from here on: input that arrives while no one has the tty open is lost.
exec 3<>/dev/ttyS1
stty raw -echo <&3 || die agent "cannot set ttyS1 raw"
say "stage=ready uptime=$(up) kvm=1 npt=$npt nested=$nested"
echo "VIREO-L1-READY uptime=$(up) npt=$npt nested=$nested" >&3

# The protocol: "VIREO-RIG-BEGIN id timeout_s", script lines, "VIREO-RIG-END id"; answers with
# the script's output and "VIREO-RIG-EXIT id rc". Each command runs in its own session so the
# watchdog can kill everything it started, and writes to its own open of ttyS1: file status
# flags live in the open file description, and a command that sets O_NONBLOCK on its stdout
# (QEMU's -serial stdio does, and never undoes it when killed) must not make the agent's own
# writes fail with EAGAIN.
while IFS= read -r line <&3; do
  case "$line" in
    "VIREO-RIG-BEGIN "*)
      set -- $line
      id=$2; tmo=$3
      f=/tmp/.vireo-cmd-$id.sh
      : > "$f"
      while IFS= read -r l <&3; do
        [ "$l" = "VIREO-RIG-END $id" ] && break
        printf '%s\n' "$l" >> "$f"
      done
      say "agent=start id=$id timeout=$tmo"
      echo "VIREO-RIG-START $id" >&3
      setsid /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        /bin/sh "$f" </dev/null >/dev/ttyS1 2>&1 &
      pid=$!
      ( sleep "$tmo"; echo "VIREO-RIG-TIMEOUT $id" >&3; kill -s KILL -"$pid" ) &
      wd=$!
      wait "$pid"; rc=$?
      kill "$wd" 2>/dev/null
      rm -f "$f"
      say "agent=exit id=$id rc=$rc"
      echo "VIREO-RIG-EXIT $id $rc" >&3
      ;;
    "VIREO-RIG-PING "*)
      echo "VIREO-RIG-PONG ${line#VIREO-RIG-PING } uptime=$(up)" >&3
      ;;
  esac
done
die agent "ttyS1 closed"
