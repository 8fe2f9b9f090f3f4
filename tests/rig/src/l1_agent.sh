# The rig's command agent, started by PID 1 of L1 after switch_root (/.vireo/busybox sh). It
# uses only its own busybox (/.vireo); commands get the host's userland from /usr. The wire
# protocol is described (and parsed) in src/agent.rs. With VIREO_AGENT_TEST=1 the same loop runs on the host
# over stdin/stdout, for the rig's unit tests.
set -f
if [ -z "$VIREO_AGENT_TEST" ]; then
  export PATH=/.vireo/bin
  bb=/.vireo/busybox; tmp=/tmp; cmd_out=/dev/ttyS1
else
  # The agent's own output descriptor, not /dev/stdout: that is a link a host may lack (CI ran
  # with a regular file in its place, and the commands' output went there).
  bb=$VIREO_AGENT_BUSYBOX; tmp=$VIREO_AGENT_TMP; cmd_out=/proc/self/fd/4
fi
up() { cut -d' ' -f1 /proc/uptime; }
say() { echo "VIREO-L1 $*" >&2; }

# PID 1 only starts the agent and reaps. Orphans of killed commands are reparented to PID 1,
# and a SIGCHLD arriving while busybox ash sits in `read` restarts the read and drops the
# bytes of the line read so far (seen as a command whose first line lost its '|', right after
# a command killed by its timeout; before the checked protocol, as a never-acknowledged one).
if [ "$$" = 1 ] && [ -z "$VIREO_AGENT_TEST" ]; then
  # A heartbeat on the console, from the tmpfs busybox only: the host tells a stopped L1 from a
  # slow command within a minute, and a count of tasks in D state tells a stuck 9p read (all
  # of /usr is 9p) from a dead kernel.
  (
    while :; do
      d=$(grep -l '^State:.D' /proc/[0-9]*/status 2>/dev/null | wc -l)
      echo "VIREO-L1 heartbeat uptime=$(up) dstate=$d" > /dev/console
      sleep 10
    done
  ) </dev/null >/dev/null 2>&1 &
  /.vireo/busybox sh /.vireo/agent.sh &
  wait $!
  say "fatal=agent detail=agent exited"
  sync; poweroff -f; sleep 60
fi
die() {
  say "fatal=$1 detail=$2"
  [ -n "$VIREO_AGENT_TEST" ] && exit 1
  sync; poweroff -f; sleep 60
}

if [ -z "$VIREO_AGENT_TEST" ]; then
  npt=0; dmesg | grep -q 'Nested Paging enabled' && npt=1
  nested=0; dmesg | grep -q 'Nested Virtualization enabled' && nested=1
  # Keep ttyS1 open from here on: input that arrives while no one has the tty open is lost.
  exec 3<>/dev/ttyS1 4>&3
  stty raw -echo <&3 || die agent "cannot set ttyS1 raw"
  say "stage=ready uptime=$(up) kvm=1 npt=$npt nested=$nested"
  echo "VIREO-L1-READY uptime=$(up) npt=$npt nested=$nested" >&4
else
  exec 3<&0 4>&1
fi

last_id=; last_rc=; last_to=0; pending=

# Reads a command's '|'-prefixed script up to its END line, checks length and CRC, and runs it.
# A control line inside the script means this copy was damaged (its END got lost): NAK it and
# handle that line next (usually the host's resend).
run_command() {
  set -- $1
  id=$2; tmo=$3; want="$4 $5"
  f=$tmp/.vireo-cmd.sh
  ended=0
  while IFS= read -r l <&3; do
    case "$l" in
      "|"*) printf '%s\n' "${l#|}" ;;
      "VIREO-RIG-END $id") ended=1; break ;;
      *) pending=$l; break ;;
    esac
  done > "$f"
  if [ "$ended" != 1 ]; then
    # Name the line that cut it short (diagnosis: a resend, or bytes lost on the way).
    by=$(printf '%.48s' "$pending" | tr -cd ' -~')
    say "agent=nak id=$id why=interrupted by=$by"
    echo "VIREO-RIG-NAK $id interrupted by=$by" >&4
    return
  fi
  # A resend of the command that ran last (its START or EXIT was lost): answer, never rerun.
  if [ "$id" = "$last_id" ]; then
    echo "VIREO-RIG-DUP $id $last_rc $last_to" >&4
    return
  fi
  got="$($bb wc -c < "$f") $($bb crc32 < "$f")"
  if [ "$got" != "$want" ]; then
    say "agent=nak id=$id got=$got want=$want"
    echo "VIREO-RIG-NAK $id got=${got% *},${got#* } want=${want% *},${want#* }" >&4
    return
  fi
  say "agent=start id=$id timeout=$tmo"
  echo "VIREO-RIG-START $id" >&4
  tf=$tmp/.vireo-timed-out
  rm -f "$tf"
  # Its own session, so the watchdog kills everything it started; its own open of ttyS1, so
  # file status flags it sets (QEMU's -serial stdio sets O_NONBLOCK on its stdout and never
  # undoes that when killed) stay off the agent's descriptor.
  setsid /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    /bin/sh "$f" </dev/null >"$cmd_out" 2>&1 &
  pid=$!
  # The watchdog kills first and reports in the EXIT line: nothing it does can block the kill.
  (
    trap 'kill $s 2>/dev/null; exit 0' TERM
    sleep "$tmo" </dev/null >/dev/null 2>&1 & s=$!
    wait $s || exit 0
    : > "$tf"
    kill -s KILL -"$pid"
    say "agent=timeout id=$id"
  ) &
  wd=$!
  wait "$pid"; rc=$?
  kill "$wd" 2>/dev/null; wait "$wd" 2>/dev/null
  to=0; [ -e "$tf" ] && to=1
  rm -f "$f" "$tf"
  last_id=$id; last_rc=$rc; last_to=$to
  say "agent=exit id=$id rc=$rc timed_out=$to"
  echo "VIREO-RIG-EXIT $id $rc $to" >&4
}

while :; do
  if [ -n "$pending" ]; then
    line=$pending; pending=
  else
    IFS= read -r line <&3 || break
  fi
  case "$line" in
    "VIREO-RIG-BEGIN "*) run_command "$line" ;;
    "VIREO-RIG-QUERY "*)
      q=${line#VIREO-RIG-QUERY }
      if [ -n "$last_id" ] && [ "$q" = "$last_id" ]; then
        echo "VIREO-RIG-DUP $q $last_rc $last_to" >&4
      else
        echo "VIREO-RIG-UNKNOWN $q" >&4
      fi
      ;;
    "VIREO-RIG-PING "*) echo "VIREO-RIG-PONG ${line#VIREO-RIG-PING } uptime=$(up)" >&4 ;;
    "") ;;
    *) say "agent=junk line=$(printf '%.60s' "$line" | tr -cd ' -~')" ;;
  esac
done
die agent "ttyS1 closed"
