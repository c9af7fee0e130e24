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
# Xen's own binaries first: /usr/sbin/xl is a wrapper script (one process
# start more per call)
export PATH=/usr/lib/xen-4.17/bin:/usr/sbin:/usr/bin:/sbin:/bin

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
GUEST_TIMEOUT=400 # seconds from xl unpause until the guest must be gone
PEER_OUT=/tmp/peer.out
PEER_GRACE=15 # seconds the peer may outlive the guest
# what the guest expects (examples/pvh-guest/src/vchan.rs): 1 MiB + 4099
# through vchan-a's 8 KiB rings, 256 KiB + 4099 through vchan-b's 1-2 KiB ones
VCHAN_BYTES_A=1052675
VCHAN_BYTES_B=266243
# steps net-*: the guest's address on xenbr0 (dom0 is 169.254.0.1), the
# datagrams of net-b, the bytes of net-c's TCP echo (8 MiB + 4099,
# examples/pvh-guest/src/net.rs)
GUEST_IP=169.254.0.2
NET_B_DATAGRAMS=10000
NET_C_BYTES=8392707
NET_OUT=/tmp/net.out
# steps blk-*: xvda is a FAT16 volume in an MBR partition at 1 MiB (for
# mtools: IMAGE@@OFFSET), KNOWN_BYTES random bytes in KNOWN.BIN and their
# CRC-32 in KNOWN.CRC; the guest writes WRITTEN_BYTES (4 MiB + 1234,
# examples/pvh-guest/src/blk.rs) to WRITTEN.BIN; xvdb is read-only
DISK=/tmp/xvda.img
RODISK=/tmp/xvdb.img
PART=$DISK@@1048576
KNOWN_BYTES=1048579
WRITTEN_BYTES=4195538
SCRATCH=/tmp/scratch.img
export MTOOLS_SKIP_CHECK=1

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
# again CMD...: runs CMD once more if it died of a signal. Freshly started
# userland processes in this emulated dom0 (busybox, xl, static glibc
# programs) now and then segfault reading their thread-local storage (see
# the top of run.sh): every tool a verdict depends on goes through this, and
# each retry is counted (shown with the verdicts).
again() {
  "$@"
  rc=$?
  [ $rc -ge 128 ] || return $rc
  echo "retried after signal $((rc - 128)): $*" >>/tmp/retries
  "$@"
}
# wait_log FILE PATTERN SECONDS: until a line of FILE matches (status 0)
wait_log() {
  n=0
  until grep -q "$2" "$1" 2>/dev/null || [ $n -ge $(($3 * 10)) ]; do
    n=$((n + 1))
    usleep 100000
  done
  grep -q "$2" "$1" 2>/dev/null
}
show() { # file: print it indented, for diagnosis
  echo "----- $1"
  sed 's/^/  | /' "$1" 2>/dev/null | tail -n 40
}

mark dom0-init
# The kernel's segfault reports, live on the console (run.sh looks for them
# even when a run hangs): see the flake described at the top of run.sh.
while read -r l; do
  case "$l" in *"segfault at"*) echo "XTB-SEGV ${l#<*>}" ;; esac
done </proc/kmsg 2>/dev/null &
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

# --- the guest's disks (steps blk-*)
# CRC-32 of a file, from gzip's trailer (once more if a tool crashed)
gzcrc1() { gzip -c <"$1" | tail -c 8 | od -An -tu4 -N4 | tr -d ' '; }
gzcrc() {
  c=$(gzcrc1 "$1")
  case "$c" in '' | *[!0-9]*) c=$(gzcrc1 "$1") ;; esac
  echo "$c"
}
disk_fail() {
  result create FAIL "preparing the disk images: $*"
  finish
}
t_disk=$(cut -d' ' -f1 /proc/uptime)
truncate -s 64M $DISK || disk_fail truncate
# MBR: one partition, type 0x06 (FAT16), LBA 2048 to the end (129024 sectors)
printf '\0\0\0\0\006\0\0\0\0\010\0\0\0\370\001\0' | dd of=$DISK bs=1 seek=446 conv=notrunc 2>/dev/null &&
  printf '\125\252' | dd of=$DISK bs=1 seek=510 conv=notrunc 2>/dev/null || disk_fail "writing the MBR"
mkfs.vfat -F 16 -n XTB --offset 2048 -h 2048 $DISK 64512 >/tmp/mkfs.log 2>&1 ||
  disk_fail "mkfs.vfat: $(tail -n 1 /tmp/mkfs.log)"
head -c $KNOWN_BYTES /dev/urandom >/tmp/known.bin
gzcrc /tmp/known.bin >/tmp/known.crc
again mcopy -o -i $PART /tmp/known.bin ::KNOWN.BIN && again mcopy -o -i $PART /tmp/known.crc ::KNOWN.CRC ||
  disk_fail "mcopy"
head -c 1048576 /dev/urandom >$RODISK
# the throughput image both guests read and write (ours as xvdc, Linux's as xvda)
dd if=/dev/zero of=$SCRATCH bs=1M count=32 2>/dev/null || disk_fail "scratch image"
RO_SUM=$(again sha256sum <$RODISK)
# xtb_break=readonly: xvdb is attached writable, so the guest's write is
# not refused (blk-c must fail)
RO_ACCESS=ro
[ "$BREAK" != readonly ] || RO_ACCESS=rw
mark disks-ready since="$t_disk"

# --- step create: our guest, PVH, kernel = our ELF, a vif on xenbr0 and
# the two disks (hotplug scripts: /etc/xen/scripts/vif-xtb, block-xtb)
cat >"$CFG" <<EOF
name = "$NAME"
type = "pvh"
kernel = "/boot/xenpv-pvh-guest"
cmdline = "${BREAK:+xtb.break=$BREAK}"
memory = 64
vcpus = 1
vif = [ 'bridge=xenbr0,mac=00:16:3e:58:54:42,script=/etc/xen/scripts/vif-xtb' ]
disk = [ 'format=raw,vdev=xvda,access=rw,backendtype=phy,script=/etc/xen/scripts/block-xtb,target=$DISK',
         'format=raw,vdev=xvdb,access=$RO_ACCESS,backendtype=phy,script=/etc/xen/scripts/block-xtb,target=$RODISK',
         'format=raw,vdev=xvdc,access=rw,backendtype=phy,script=/etc/xen/scripts/block-xtb,target=$SCRATCH' ]
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
PORT=$(again xenstore-read "/local/domain/$DOMID/console/port" 2>/dev/null)
# the dom0 peer of steps c and d: waits for the guest's announcement in
# xenconsoled's log, so it starts before the guest runs
PEER_PID=
if [ -n "$DOMID" ]; then
  again xtb-dom0-peer --domid "$DOMID" --log "$CONSOLE_LOG" --out "$PEER_OUT" --timeout 400 &
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

# --- steps net-a, net-b, net-c (dom0's half), in the background once the
# guest says its network is up: ping (net-a), the dom0 peer's UDP echo
# check (net-b), busybox nc through the guest's TCP echo (net-c, the
# guest closes after NET_C_BYTES); then "XTB-NET-DONE" to the guest's
# port 9. Progress and the backends' keys go to $NET_OUT.
GHOME=/local/domain/$DOMID
# nc_echo: /tmp/net-c.in through the guest's TCP echo into /tmp/net-c.out
# with busybox nc, its stdin held open by a feeder (at EOF nc would stop
# reading the echo); returns nc's status
nc_echo() {
  rm -f /tmp/net-c.fifo
  mkfifo /tmp/net-c.fifo
  {
    cat /tmp/net-c.in
    exec sleep $GUEST_TIMEOUT
  } >/tmp/net-c.fifo &
  feeder=$!
  timeout 150 nc $GUEST_IP 7 </tmp/net-c.fifo >/tmp/net-c.out 2>/tmp/net-c.err
  nc_rc=$?
  kill $feeder 2>/dev/null
  return $nc_rc
}
# send_done ADDR:PORT: "XTB-NET-DONE", three times (UDP may drop one)
send_done() {
  for k in 1 2 3; do
    xtb-dom0-peer udp-send "$1" XTB-NET-DONE
    usleep 300000
  done
}
# wait_console TEXT SECONDS: until a guest console line starts with TEXT
wait_console() {
  s0=$(cut -d' ' -f1 /proc/uptime)
  wait_log "$CONSOLE_LOG" "^$1" "$2"
  echo "console '$1': $? (since $s0, now $(cut -d' ' -f1 /proc/uptime))" >>$NET_OUT
}
# "name: key=value ..." of a frontend and its backend directory
dev_keys() {
  echo "$1 frontend: $(xenstore-ls "$GHOME/device/$1/$2" 2>/dev/null | tr -d '"' | awk '$1 !~ /^(backend|backend-id|handle|mac|virtual-device|device-type)$/ { printf "%s=%s ", $1, $3 }')"
  echo "$1 backend: $(xenstore-ls "/local/domain/0/backend/$1/$DOMID/$2" 2>/dev/null | tr -d '"' | awk '$1 ~ /^(feature-|multi-queue|max-ring|sectors|sector-size|physical-sector|info|mode|discard)/ { printf "%s=%s ", $1, $3 }')"
}
net_driver() {
  i=0
  until grep -q '^XTB-PEER net ready' "$CONSOLE_LOG" 2>/dev/null; do
    i=$((i + 1))
    xl domid "$NAME" >/dev/null 2>&1
    rc=$? # (a crashed xl, rc >= 128, says nothing)
    if [ $i -gt $((GUEST_TIMEOUT * 10)) ] || { [ $rc != 0 ] && [ $rc -lt 128 ]; }; then
      echo "never-ready" >>$NET_OUT
      return
    fi
    # for diagnosis, should the guest never get there
    [ $((i % 100)) != 50 ] || {
      xenstore-ls -f /local/domain/0/backend
      ip -o link
      brctl show
    } >/tmp/net-diag 2>&1
    usleep 250000
  done
  echo "ready $(cut -d' ' -f1 /proc/uptime)" >>$NET_OUT
  dev_keys vif 0 >/tmp/keys.vif
  again ping -c 100 -A -W 5 $GUEST_IP >/tmp/ping.out 2>&1
  echo "ping-rc $? $(cut -d' ' -f1 /proc/uptime)" >>$NET_OUT
  again xtb-dom0-peer udp-echo $GUEST_IP:7 $NET_B_DATAGRAMS net-b >/tmp/net-b.out 2>/tmp/net-b.err
  echo "udp-rc $? $(cut -d' ' -f1 /proc/uptime)" >>$NET_OUT
  head -c $NET_C_BYTES /dev/urandom >/tmp/net-c.in
  t0=$(cut -d' ' -f1 /proc/uptime)
  nc_echo
  rc=$?
  if [ $rc -ge 128 ] && [ $rc != 143 ]; then
    # a crash (not the timeout's TERM): the guest listens again
    echo "retried after signal $((rc - 128)): nc" >>/tmp/retries
    nc_echo
    rc=$?
  fi
  t1=$(cut -d' ' -f1 /proc/uptime)
  echo "nc-rc $rc $t0 $t1" >>$NET_OUT
  # net-d: unplug the idle vif, wait for the guest to let go, plug a new
  # one, and check traffic flows again
  xl network-detach "$NAME" 0 >/tmp/net-d.detach 2>&1
  echo "detach-rc $? $(cut -d' ' -f1 /proc/uptime)" >>$NET_OUT
  wait_console 'XTB-PEER net-d detached' 30
  xl network-attach "$NAME" bridge=xenbr0 mac=00:16:3e:58:54:42 script=/etc/xen/scripts/vif-xtb \
    >/tmp/net-d.attach 2>&1
  echo "attach-rc $? $(cut -d' ' -f1 /proc/uptime)" >>$NET_OUT
  wait_console 'XTB-PEER net-d reattached' 60
  again ping -c 20 -A -W 5 $GUEST_IP >/tmp/ping-d.out 2>&1
  again xtb-dom0-peer udp-echo $GUEST_IP:7 1000 net-d >/tmp/net-d.out 2>&1
  echo "net-d-done $(cut -d' ' -f1 /proc/uptime)" >>$NET_OUT
  send_done $GUEST_IP:9
  echo "done $(cut -d' ' -f1 /proc/uptime)" >>$NET_OUT
  # the vbd keys, once the guest has read the disk
  wait_log "$CONSOLE_LOG" '^XTB-PEER blk-a' 120
  dev_keys vbd 51712 >/tmp/keys.vbd
}
: >$NET_OUT
net_driver &
NET_PID=$!

# --- step b (dom0's half), while the guest runs: the guest writes
# data/xenpv-test through its xenstore ring and waits for our ack; libxl
# removes its home once the domain is destroyed, so we read it now.
GHOME=/local/domain/$DOMID
B_VALUE='' B_NAME='' B_DOMID='' B_AT='' B_XL=''
check_b() {
  [ -z "$B_AT" ] || return 0
  B_VALUE=$(again xenstore-read "$GHOME/data/xenpv-test" 2>/dev/null) || return 0
  B_AT=$(cut -d' ' -f1 /proc/uptime)
  B_NAME=$(again xenstore-read "$GHOME/name" 2>/dev/null)
  B_DOMID=$(again xenstore-read "$GHOME/domid" 2>/dev/null)
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
  elif [ $? -ge 128 ]; then
    : # xl itself crashed: no answer
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

kill $NET_PID 2>/dev/null
# what both ends of the vif and the vbds wrote (saved while the guest lived)
# (printed once)
for f in /tmp/keys.vif /tmp/keys.vbd; do
  [ ! -s $f ] || sed 's/^/XTB-FEATURES /' $f
done

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
elif again sh -c 'head -c "$1" "$2" | cmp -s "$3" -' - "$size" "$CONSOLE_LOG" "$expect" &&
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
  elif ! again cmp -s /tmp/$1.in /tmp/$1.out; then
    result $1 FAIL "the echo differs from what dom0 sent ($v_got of $(wc -c </tmp/$1.in) bytes back; $(cmp /tmp/$1.in /tmp/$1.out 2>&1 | head -n 1))"
  else
    result $1 PASS "vchan-socket-proxy (libxenvchan $2) sent $(wc -c </tmp/$1.in) random bytes, the guest's CRC-32 matches gzip's ($v_sum), the $v_got echoed bytes match; proxy exit $3"
  fi
}
vchan_verdict vchan-a client "$RC_A"
vchan_verdict vchan-b server "$RC_B"

# --- steps net-a, net-b, net-c: dom0's tools' results, the guest's CRC-32
# of what it received through TCP
show $NET_OUT
if ! grep -q '^ready' $NET_OUT; then
  for s in net-a net-b net-c net-d; do result $s FAIL "the guest never said 'net ready' on its console"; done
  show /tmp/net-diag
else
  sent=$(sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' /tmp/ping.out)
  got=$(sed -n 's/.* \([0-9]*\) packets received.*/\1/p' /tmp/ping.out)
  if [ "$sent" = 100 ] && [ "$got" = 100 ]; then
    result net-a PASS "ping: 100 echo requests, 100 replies (ARP resolved): $(grep 'round-trip' /tmp/ping.out)"
  else
    result net-a FAIL "ping: '$(tail -n 2 /tmp/ping.out | tr '\n' ' ')'"
  fi
  v=$(grep -m 1 '^XTB-RESULT net-b ' /tmp/net-b.out)
  case "$v" in
    "XTB-RESULT net-b PASS "*) echo "$v" ;;
    "XTB-RESULT net-b FAIL "*)
      echo "$v"
      FAILED=1
      ;;
    *) result net-b FAIL "the dom0 peer gave no verdict: $(tail -c 200 /tmp/net-b.out)" ;;
  esac
  line=$(grep -a -m 1 '^XTB-PEER net-c ' "$CONSOLE_LOG")
  want=$(gzcrc /tmp/net-c.in)
  nc_line=$(grep '^nc-rc' $NET_OUT)
  nc_secs=$(echo "$nc_line" | awk '{ printf "%.1f", $4 - $3 }')
  if [ -z "$line" ]; then
    result net-c FAIL "no XTB-PEER net-c line from the guest ($nc_line: $(head -c 200 /tmp/net-c.err))"
  elif [ "${line##*crc32=}" != "$want" ]; then
    result net-c FAIL "the guest received CRC-32 ${line##*crc32=}, dom0 sent CRC-32 $want"
  elif ! again cmp -s /tmp/net-c.in /tmp/net-c.out; then
    result net-c FAIL "the echo differs from what nc sent ($(wc -c </tmp/net-c.out) of $NET_C_BYTES bytes back; $(cmp /tmp/net-c.in /tmp/net-c.out 2>&1 | head -n 1))"
  else
    result net-c PASS "busybox nc sent $NET_C_BYTES random bytes through the guest's TCP echo and got them back in ${nc_secs}s, the guest's CRC-32 matches gzip's ($want)"
  fi
  d_det=$(grep '^detach-rc' $NET_OUT)
  d_att=$(grep '^attach-rc' $NET_OUT)
  d_got=$(sed -n 's/.* \([0-9]*\) packets received.*/\1/p' /tmp/ping-d.out 2>/dev/null)
  d_udp=$(grep -m 1 '^XTB-RESULT net-d ' /tmp/net-d.out 2>/dev/null)
  if [ "$(echo "$d_det" | cut -d' ' -f2)" != 0 ]; then
    result net-d FAIL "xl network-detach: $(tail -n 1 /tmp/net-d.detach 2>/dev/null)"
  elif [ "$(echo "$d_att" | cut -d' ' -f2)" != 0 ]; then
    result net-d FAIL "xl network-attach: $(tail -n 1 /tmp/net-d.attach 2>/dev/null)"
    show /tmp/net-d.attach
  elif [ "$d_got" != 20 ]; then
    result net-d FAIL "after network-attach: '$(tail -n 2 /tmp/ping-d.out 2>/dev/null | tr '\n' ' ')'"
  else
    case "$d_udp" in
      "XTB-RESULT net-d PASS "*) result net-d PASS "xl network-detach, then network-attach: 20 pings answered, UDP ${d_udp#XTB-RESULT net-d PASS }" ;;
      *) result net-d FAIL "after network-attach the UDP echo failed: ${d_udp:-no verdict}" ;;
    esac
  fi
fi

if dmesg | grep -q segfault; then
  echo "XTB-MARK dom0 userland segfaults: $(dmesg | grep -c segfault), tools retried: $(cat /tmp/retries 2>/dev/null | wc -l)"
  dmesg | grep segfault | tail -n 5
fi

# --- steps blk-a, blk-b, blk-c: the guest's CRC-32s, and the images after
# the guest is gone (mtools, fsck.fat, the read-only image's hash)
line=$(grep -a -m 1 '^XTB-PEER blk-a ' "$CONSOLE_LOG")
if [ -z "$line" ]; then
  result blk-a FAIL "no XTB-PEER blk-a line from the guest"
elif [ "${line##*crc32=}" != "$(cat /tmp/known.crc)" ]; then
  result blk-a FAIL "the guest read CRC-32 ${line##*crc32=}, KNOWN.BIN has $(cat /tmp/known.crc)"
else
  result blk-a PASS "the guest read KNOWN.BIN ($KNOWN_BYTES random bytes, mkfs.vfat + mcopy) with CRC-32 $(cat /tmp/known.crc)"
fi
line=$(grep -a -m 1 '^XTB-PEER blk-b ' "$CONSOLE_LOG")
again xtb-dom0-peer pattern $WRITTEN_BYTES >/tmp/written.expect
rm -f /tmp/written.bin
again mcopy -n -i $PART ::WRITTEN.BIN /tmp/written.bin >/tmp/mcopy.err 2>&1
again dd if=$DISK of=/tmp/part.img bs=1M skip=1 2>/dev/null
again fsck.fat -n /tmp/part.img >/tmp/fsck.out 2>&1
fsck_rc=$?
rm -f /tmp/part.img
if [ -z "$line" ]; then
  result blk-b FAIL "no XTB-PEER blk-b line from the guest"
elif [ ! -f /tmp/written.bin ]; then
  result blk-b FAIL "mcopy finds no WRITTEN.BIN: $(head -c 200 /tmp/mcopy.err)"
elif ! again cmp -s /tmp/written.expect /tmp/written.bin; then
  result blk-b FAIL "WRITTEN.BIN differs from the pattern ($(wc -c </tmp/written.bin) of $WRITTEN_BYTES bytes; $(cmp /tmp/written.expect /tmp/written.bin 2>&1 | head -n 1))"
elif [ "${line##*crc32=}" != "$(gzcrc /tmp/written.bin)" ]; then
  result blk-b FAIL "the guest reports CRC-32 ${line##*crc32=}, WRITTEN.BIN has $(gzcrc /tmp/written.bin)"
elif [ $fsck_rc != 0 ]; then
  result blk-b FAIL "fsck.fat -n found problems: $(tail -n 3 /tmp/fsck.out | tr '\n' ' ')"
else
  result blk-b PASS "mcopy read WRITTEN.BIN: $WRITTEN_BYTES bytes, the expected pattern, CRC-32 as the guest says; fsck.fat -n clean"
fi
if [ "$(again sha256sum <$RODISK)" != "$RO_SUM" ]; then
  result blk-c FAIL "the read-only image changed"
else
  result blk-c PASS "xvdb (access=$RO_ACCESS) unchanged"
fi

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

# --- step linux-ref: a Linux PV guest (the testbed's kernel) does what
# the ratios compare: dom0's UDP echo check against it, the same
# sequential read and write of the scratch image (linux-domu-init.sh)
LNAME=xtb-linux
LLOG=/var/log/xen/console/guest-$LNAME.log
cat >/etc/xen/$LNAME.cfg <<EOF
name = "$LNAME"
type = "pv"
kernel = "/boot/linux-domu/vmlinux"
ramdisk = "/boot/linux-domu/initrd.cpio"
cmdline = "console=hvc0 loglevel=5"
memory = 256
vcpus = 1
vif = [ 'bridge=xenbr0,mac=00:16:3e:58:54:43,script=/etc/xen/scripts/vif-xtb' ]
disk = [ 'format=raw,vdev=xvda,access=rw,backendtype=phy,script=/etc/xen/scripts/block-xtb,target=$SCRATCH' ]
on_poweroff = "destroy"
on_reboot = "destroy"
on_crash = "destroy"
EOF
mark linux-create
l_ready=
if ! xl create /etc/xen/$LNAME.cfg >/tmp/xl-linux.log 2>&1; then
  result linux-ref FAIL "xl create: $(tail -n 1 /tmp/xl-linux.log)"
elif ! wait_log $LLOG '^XTB-LINUX ready' 180; then
  result linux-ref FAIL "the Linux guest never got ready: $(tail -c 300 $LLOG 2>/dev/null | tr '\n' ' ')"
else
  l_ready=$(cut -d' ' -f1 /proc/uptime)
  again xtb-dom0-peer udp-echo 169.254.0.3:7 $NET_B_DATAGRAMS linux-udp >/tmp/linux-udp.out 2>&1
  send_done 169.254.0.3:7
  wait_log $LLOG '^XTB-LINUX done' 120
  disk=$(grep -m 1 '^XTB-LINUX disk ' $LLOG)
  udp=$(grep -m 1 '^XTB-RESULT linux-udp PASS' /tmp/linux-udp.out)
  if [ -z "$udp" ] || [ -z "$disk" ]; then
    result linux-ref FAIL "UDP: '$(head -c 200 /tmp/linux-udp.out)', disk: '$disk'"
  else
    # ours: dom0's net-b figure and the guest's timing of the same disk work
    o_udp=$(sed -n 's/.*rate=\([0-9]*\).*/\1/p' /tmp/net-b.out)
    l_udp=$(echo "$udp" | sed -n 's/.*rate=\([0-9]*\).*/\1/p')
    perf=$(grep -a -m 1 '^XTB-PEER perf disk ' "$CONSOLE_LOG")
    awk -v ou="$o_udp" -v lu="$l_udp" -v perf="$perf" -v disk="$disk" 'BEGIN {
      n = split(perf " " disk, f, " ")
      for (i = 1; i <= n; i++) if (split(f[i], kv, "=") == 2) v[kv[1]] = kv[2]
      # (busybox awk: no variable may be called "or")
      bytes = v["bytes"]; o_rd = bytes / v["read_us"]; o_wr = bytes / v["write_us"]
      l_rd = bytes / (v["read_s"] * 1e6); l_wr = bytes / (v["write_s"] * 1e6)
      printf "XTB-RATIO udp datagrams/s: ours %d, Linux %d, ratio %.2f\n", ou, lu, ou / lu
      printf "XTB-RATIO disk read MB/s: ours %.1f, Linux %.1f, ratio %.2f\n", o_rd, l_rd, o_rd / l_rd
      printf "XTB-RATIO disk write+flush MB/s: ours %.1f, Linux %.1f, ratio %.2f\n", o_wr, l_wr, o_wr / l_wr
    }' >/tmp/ratios
    cat /tmp/ratios
    result linux-ref PASS "Linux echoed $NET_B_DATAGRAMS datagrams (${udp#XTB-RESULT linux-udp PASS }); ${disk#XTB-LINUX }"
  fi
fi
i=0
while xl domid $LNAME >/dev/null 2>&1 && [ $i -lt 150 ]; do
  i=$((i + 1))
  usleep 200000
done
xl destroy $LNAME 2>/dev/null
mark linux-done ready="$l_ready"

if [ -n "$FAILED" ]; then
  echo "----- xl dmesg"
  xl dmesg | tail -n 30 | sed 's/^/  | /'
fi
finish
