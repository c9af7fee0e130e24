#!/bin/sh
# /init of the testbed's dom0 (busybox sh; the root is the initramfs).
# Brings up the Xen toolstack, runs the scenario against our PVH guest and
# prints one "XTB-RESULT <step> PASS|FAIL <detail>" line per step on the
# console (hvc0 -> Xen -> the serial port run.sh reads), then powers off.
# Steps c, d, c2 and d2 run /usr/bin/xtb-dom0-peer (scripts/xen-testbed/dom0-peer)
# next to the guest; its verdicts for them are printed from its output file.
# Step b: while the guest lives, dom0 reads the key the guest wrote through
# its xenstore ring and acknowledges it (the guest waits for that).
# Steps vchan-a and vchan-b: Xen's own vchan-socket-proxy (libxenvchan)
# connects as the client to the guest's vchan server (a), then serves the
# guest's client (b), and sends random bytes, which the guest echoes; dom0
# compares the echo with its input, and the guest's CRC-32 of what it
# received with gzip's of what dom0 sent (the gzip trailer).
# Kernel command line: xtb_break=console|xenstore|grant|revoke|vchan|shutdown is passed to the
# guest (see run.sh).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:/usr/lib/xen-4.17/bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
# devtmpfs has no /dev/fd and friends (udev makes them normally)
ln -sf /proc/self/fd /dev/fd
ln -sf fd/0 /dev/stdin
ln -sf fd/1 /dev/stdout
ln -sf fd/2 /dev/stderr
exec </dev/console >/dev/console 2>&1
# No output processing on the console: with it, the tty writes each line's
# text and its "\r\n" separately, and a guest line that Xen prints in between
# ends up inside ours on the serial port (run.sh's stamp() explains the rest).
stty -opost

NAME=xtb-guest
CFG=/etc/xen/$NAME.cfg
CONSOLE_LOG=/var/log/xen/console/guest-$NAME.log
XL_LOG=/var/log/xen/xl-$NAME.log
GUEST_TIMEOUT=180 # seconds from xl unpause until the guest must be gone
PEER_OUT=/tmp/peer.out
PEER_GRACE=15 # seconds the peer may outlive the guest
# what the guest expects (examples/pvh-guest/src/vchan.rs): 1 MiB + 4099
# through vchan-a's 8 KiB rings, 256 KiB + 4099 through vchan-b's 1-2 KiB ones
VCHAN_BYTES_A=1052675
VCHAN_BYTES_B=266243

mark() { echo "XTB-MARK $* uptime=$(cut -d' ' -f1 /proc/uptime)"; }
FAILED=
result() {
  step=$1 verdict=$2
  shift 2
  echo "XTB-RESULT $step $verdict $*"
  [ "$verdict" = PASS ] || FAILED=1
}
finish() {
  mark scenario-done
  sync
  poweroff -f
  sleep 30
}
show() { # file: print it indented, for diagnosis
  echo "----- $1"
  sed 's/^/  | /' "$1" 2>/dev/null | tail -n 40
}

mark dom0-init
read -r cmdline </proc/cmdline
BREAK=
for arg in $cmdline; do
  case "$arg" in xtb_break=*) BREAK=${arg#xtb_break=} ;; esac
done

# --- step boot: the toolstack
boot_fail() {
  result boot FAIL "$*"
  dmesg | tail -n 20
  finish
}
modprobe -a xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs || boot_fail "modprobe"
# Linux's backends and a bridge with a link-local address, for the guest's
# network and disk (no guest device uses them yet)
modprobe -a xen-netback xen-blkback bridge loop || boot_fail "modprobe xen-netback xen-blkback bridge loop"
brctl addbr xenbr0 && ip addr add 169.254.0.1/16 dev xenbr0 && ip link set xenbr0 up ||
  boot_fail "bridge xenbr0"
BACKENDS="netback=$([ -d /sys/bus/xen-backend/drivers/vif ] && echo yes || echo no) blkback=$([ -d /sys/bus/xen-backend/drivers/vbd ] && echo yes || echo no) xenbr0=$(ip -4 -o addr show dev xenbr0 | awk '{ print $4 }')"
# the devices the dom0 peer of steps c and d uses (devtmpfs creates them)
for dev in /dev/xen/gntdev /dev/xen/evtchn; do
  [ -c $dev ] || boot_fail "no $dev after modprobe"
done
mount -t xenfs xenfs /proc/xen || boot_fail "mount xenfs"
mkdir -p /run/xen /run/xenstored /var/lib/xen /var/log/xen/console
XENSTORED_ROOTDIR=/run/xenstored oxenstored --pid-file /run/xenstored.pid || boot_fail "oxenstored"
i=0
until xenstore-read -s / >/dev/null 2>&1; do
  i=$((i + 1))
  [ $i -le 100 ] || boot_fail "xenstored does not answer"
  usleep 100000
done
xen-init-dom0 >/tmp/init-dom0.log 2>&1 || {
  show /tmp/init-dom0.log
  boot_fail "xen-init-dom0"
}
xenconsoled --pid-file=/run/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console ||
  boot_fail "xenconsoled"
xl info >/tmp/xl-info 2>&1 || {
  show /tmp/xl-info
  boot_fail "xl info"
}
result boot PASS "$(awk '/^(xen_version|virt_caps) / { v = $0; sub(/^[^:]*: */, "", v); printf "%s=[%s] ", $1, v }' /tmp/xl-info)$BACKENDS"
mark dom0-ready

# --- step create: our guest, PVH, kernel = our ELF
cat >"$CFG" <<EOF
name = "$NAME"
type = "pvh"
kernel = "/boot/xenpv-pvh-guest"
cmdline = "${BREAK:+xtb.break=$BREAK}"
memory = 32
vcpus = 1
on_poweroff = "destroy"
on_reboot = "destroy"
on_crash = "destroy"
EOF
mark guest-create
# Paused first: the guest runs to completion in well under a second, before
# we could look up its domid and console port.
if ! xl create -p "$CFG" >/tmp/xl-create.log 2>&1; then
  result create FAIL "xl create: $(tail -n 1 /tmp/xl-create.log)"
  show /tmp/xl-create.log
  show "$XL_LOG"
  finish
fi
DOMID=$(xl domid "$NAME" 2>/dev/null)
# the console port as the toolstack published it (checked against the guest's line)
PORT=$(xenstore-read "/local/domain/$DOMID/console/port" 2>/dev/null)
# the dom0 peer of steps c and d: waits for the guest's announcement in
# xenconsoled's log, so it starts before the guest runs
PEER_PID=
if [ -n "$DOMID" ]; then
  xtb-dom0-peer --domid "$DOMID" --log "$CONSOLE_LOG" --out "$PEER_OUT" --timeout 150 &
  PEER_PID=$!
fi
# steps vchan-a and vchan-b: one vchan-socket-proxy each, started now. For
# a, a client that waits (a xenstore watch) for the guest to publish its
# server; for b, a server publishing under dom0's home for the guest. A
# feeder streams the input and then holds it open (at EOF the proxy would
# stop reading the echo). vchan_start STEP MODE PATH A|B BYTES
vchan_start() {
  head -c $5 /dev/urandom >/tmp/$1.in
  mkfifo /tmp/$1.fifo
  vchan-socket-proxy -m "$2" "$DOMID" "$3" - </tmp/$1.fifo >/tmp/$1.out 2>/tmp/$1.err &
  eval "PROXY_$4=\$!"
  {
    cat /tmp/$1.in
    exec sleep $GUEST_TIMEOUT
  } >/tmp/$1.fifo &
  eval "FEED_$4=\$!"
}
PROXY_A= FEED_A= PROXY_B= FEED_B=
if [ -n "$DOMID" ]; then
  vchan_start vchan-a client "/local/domain/$DOMID/data/vchan/0/1" A $VCHAN_BYTES_A
  vchan_start vchan-b server "/local/domain/0/data/vchan/$DOMID/2" B $VCHAN_BYTES_B
fi
if [ -z "$DOMID" ] || [ -z "$PORT" ] || ! xl unpause "$NAME"; then
  result create FAIL "domid='$DOMID' console port='$PORT' or xl unpause failed"
  xl list
  finish
fi
created=$(cut -d' ' -f1 /proc/uptime)
result create PASS "domid=$DOMID console-port=$PORT"
mark guest-created domid="$DOMID"

# --- step b (dom0's half), while the guest runs: the guest writes
# data/xenpv-test through its xenstore ring and waits for our ack; libxl
# removes its home once the domain is destroyed, so we read it now.
GHOME=/local/domain/$DOMID
B_VALUE='' B_NAME='' B_DOMID='' B_AT='' B_XL=''
check_b() {
  [ -z "$B_AT" ] || return 0
  B_VALUE=$(xenstore-read "$GHOME/data/xenpv-test" 2>/dev/null) || return 0
  B_AT=$(cut -d' ' -f1 /proc/uptime)
  B_NAME=$(xenstore-read "$GHOME/name" 2>/dev/null)
  B_DOMID=$(xenstore-read "$GHOME/domid" 2>/dev/null)
  # "<name> <id>" of our domain as xl list shows it now
  B_XL=$(xl list 2>/dev/null | awk -v n="$NAME" '$1 == n { print $1 " " $2 }')
  echo "XTB-MARK b-read value='$B_VALUE' name='$B_NAME' domid='$B_DOMID' uptime=$B_AT"
  xenstore-write "$GHOME/data/xenpv-test-ack" "dom0 read it" ||
    echo "XTB-MARK b: xenstore-write of the ack failed"
}

# --- wait for the guest to finish (it powers itself off)
gone=0
i=0
missing=0
while [ $i -lt $((GUEST_TIMEOUT * 5)) ]; do
  check_b
  # Gone when xl twice in a row does not find it: one failed lookup has
  # been seen while the guest was still running (a loaded host).
  if xl domid "$NAME" >/dev/null 2>&1; then
    missing=0
  else
    missing=$((missing + 1))
    xl domid "$NAME" >/tmp/xl-domid.err 2>&1 || echo "XTB-MARK xl domid: $(head -c 150 /tmp/xl-domid.err)"
  fi
  if [ $missing -ge 2 ]; then
    gone=1
    break
  fi
  i=$((i + 1))
  usleep 200000
done
secs=$(awk -v a="$created" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%.1f", b - a }')
mark guest-gone="$gone" after="$secs"s
if [ $gone = 0 ]; then
  xl list
  xl destroy "$NAME"
fi
# the peer has its own deadlines; it gets a little longer than the guest
i=0
while [ -n "$PEER_PID" ] && kill -0 "$PEER_PID" 2>/dev/null && [ $i -lt $((PEER_GRACE * 5)) ]; do
  i=$((i + 1))
  usleep 200000
done
if [ -n "$PEER_PID" ] && kill -0 "$PEER_PID" 2>/dev/null; then
  kill "$PEER_PID"
  echo "XTB-MARK peer killed ${PEER_GRACE}s after the guest was gone"
fi
[ -z "$PEER_PID" ] || wait "$PEER_PID"
mark peer-done
# a proxy exits once the guest closed its end (or the guest is gone).
# vchan_stop PROXY_PID FEED_PID: sets VCHAN_RC
vchan_stop() {
  i=0
  while [ -n "$1" ] && kill -0 "$1" 2>/dev/null && [ $i -lt $((PEER_GRACE * 5)) ]; do
    i=$((i + 1))
    usleep 200000
  done
  VCHAN_RC=killed
  if [ -n "$1" ] && kill -0 "$1" 2>/dev/null; then
    echo "XTB-MARK proxy $1 still running, in $(cat /proc/$1/wchan 2>/dev/null); feeder $2 in $(cat /proc/$2/wchan 2>/dev/null) ($(cat /proc/$2/comm 2>/dev/null))"
    kill "$1"
    wait "$1"
  elif [ -n "$1" ]; then
    wait "$1"
    VCHAN_RC=$?
  fi
  [ -z "$2" ] || kill "$2" 2>/dev/null
}
vchan_stop "$PROXY_A" "$FEED_A"
RC_A=$VCHAN_RC
vchan_stop "$PROXY_B" "$FEED_B"
RC_B=$VCHAN_RC
mark vchan-done rc-a="$RC_A" rc-b="$RC_B"

# --- step a: what xenconsoled read from the guest's console ring
expect=/tmp/console.expected
{
  echo "xenpv-pvh-guest: console ring OK domid=$DOMID port=$PORT"
  awk 'BEGIN {
    for (k = 1; k <= 40; k++) {
      s = sprintf("xenpv-pvh-guest: ring line %02d/40 ", k)
      for (i = 0; i < 48; i++) s = s sprintf("%c", 97 + (k + i) % 26)
      print s
    }
  }'
} >"$expect"
echo "xenpv-pvh-guest: console ring done after $(wc -c <"$expect") bytes" >>"$expect"
# Step a's text comes first; after it only the XTB-PEER announcements of
# steps c and d may follow.
size=$(wc -c <"$expect")
if [ ! -f "$CONSOLE_LOG" ]; then
  result a FAIL "xenconsoled wrote no $CONSOLE_LOG"
elif head -c "$size" "$CONSOLE_LOG" | cmp -s "$expect" - &&
  ! tail -c +$((size + 1)) "$CONSOLE_LOG" | grep -qv '^XTB-PEER '; then
  result a PASS "xenconsoled logged exactly the expected $(wc -l <"$expect") lines ($size bytes) from the ring, then $(tail -c +$((size + 1)) "$CONSOLE_LOG" | wc -l) XTB-PEER lines"
else
  got=$(wc -c <"$CONSOLE_LOG")
  first=$(diff "$expect" "$CONSOLE_LOG" | grep '^[-+][^-+]' | head -n 2 | tr '\n' '|')
  result a FAIL "console log differs from the expected text ($got bytes, first difference: $first)"
  diff "$expect" "$CONSOLE_LOG" | head -n 12
fi

# --- step b: what the guest wrote into xenstore, its name and domid there
# and in the toolstack (xl list)
b_expect="hello from xenpv-pvh-guest domid=$DOMID"
if [ -z "$B_AT" ]; then
  result b FAIL "$GHOME/data/xenpv-test never appeared while the guest ran"
elif [ "$B_VALUE" != "$b_expect" ]; then
  result b FAIL "$GHOME/data/xenpv-test is '$B_VALUE', expected '$b_expect'"
elif [ "$B_NAME" != "$NAME" ] || [ "$B_DOMID" != "$DOMID" ] || [ "$B_XL" != "$NAME $DOMID" ]; then
  result b FAIL "xenstore says name='$B_NAME' domid='$B_DOMID', xl list '$B_XL', expected '$NAME' $DOMID"
else
  result b PASS "xenstore-read $GHOME/data/xenpv-test = '$B_VALUE'; xenstore name=$B_NAME domid=$B_DOMID, xl list '$B_XL'; ack written"
fi

# --- steps c, d (v1 grant table) and c2, d2 (v2): the peer's verdicts, from its output file (printed now
# that the guest is quiet: live dom0 lines can interleave with the guest's)
for step in c d c2 d2; do
  v=$(grep -m 1 "^XTB-RESULT $step " "$PEER_OUT" 2>/dev/null)
  case "$v" in
    "XTB-RESULT $step PASS "*) echo "$v" ;;
    "XTB-RESULT $step FAIL "*)
      echo "$v"
      FAILED=1
      ;;
    *) result "$step" FAIL "the dom0 peer gave no verdict (crashed or killed)" ;;
  esac
done

# --- steps vchan-a and vchan-b: the echo equals the input, and the guest's
# CRC-32 of what it received (its console line) equals gzip's of what dom0
# sent. vchan_verdict STEP ROLE PROXY_RC
vchan_verdict() {
  v_line=$(grep -a -m 1 "^XTB-PEER $1 " "$CONSOLE_LOG" 2>/dev/null)
  v_sum=$(gzip -c </tmp/$1.in | tail -c 8 | od -An -tu4 -N4 | tr -d ' ')
  v_got=$(wc -c </tmp/$1.out 2>/dev/null)
  v_guest=${v_line##*crc32=}
  if [ -z "$v_line" ]; then
    result $1 FAIL "no XTB-PEER $1 line from the guest; proxy exit $3: $(tail -c 200 /tmp/$1.err 2>/dev/null)"
  elif [ "$v_guest" != "$v_sum" ]; then
    result $1 FAIL "the guest received CRC-32 $v_guest, dom0 sent CRC-32 $v_sum"
  elif ! cmp -s /tmp/$1.in /tmp/$1.out; then
    result $1 FAIL "the echo differs from what dom0 sent ($v_got of $(wc -c </tmp/$1.in) bytes back; $(cmp /tmp/$1.in /tmp/$1.out 2>&1 | head -n 1))"
  else
    result $1 PASS "vchan-socket-proxy (libxenvchan $2) sent $(wc -c </tmp/$1.in) random bytes, the guest's CRC-32 matches gzip's ($v_sum), the $v_got echoed bytes match; proxy exit $3"
  fi
}
vchan_verdict vchan-a client "$RC_A"
vchan_verdict vchan-b server "$RC_B"

# --- step shutdown: gone, because it asked for poweroff (reason code 0)
reason=$(sed -n 's/.*shut down, reason code \([0-9]*\).*/\1/p' "$XL_LOG" 2>/dev/null | head -n 1)
if [ $gone = 1 ] && [ "$reason" = 0 ]; then
  result shutdown PASS "domain $DOMID shut down with reason code 0 (poweroff) and is gone, ${secs}s after xl unpause"
elif [ $gone = 1 ]; then
  result shutdown FAIL "domain $DOMID is gone but xl logged reason code '${reason:-none}' (0 = poweroff)"
else
  result shutdown FAIL "domain $DOMID still there ${GUEST_TIMEOUT}s after xl unpause"
fi
show "$XL_LOG"
if [ -n "$FAILED" ]; then
  echo "----- xl dmesg"
  xl dmesg | tail -n 30 | sed 's/^/  | /'
fi
finish
