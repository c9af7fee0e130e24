#!/bin/busybox sh
# /init of the reference Linux domU (the testbed's own Debian kernel, PVH,
# busybox): the same work the Rust guest does for the ratios run.sh prints.
# Its vif is on xenbr0 at 169.254.0.3; dom0's udp-echo (the net-b check)
# runs against `xtb-dom0-peer udp-echo-server 7` here. Its xvda is the
# scratch image the Rust guest read and wrote as xvdc: the same sequential
# read and write (32 MiB, 1 MiB O_DIRECT blocks, then a flush) are timed
# here, once dom0's "XTB-NET-DONE" ended the echo server. Results go to
# the console (hvc0) as XTB-LINUX lines; then it powers off.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/hvc0 >/dev/hvc0 2>&1
up() { cut -d' ' -f1 /proc/uptime; }
echo "XTB-LINUX init uptime=$(up)"
for m in /lib/modules/*.ko; do insmod "$m"; done
i=0
until [ -b /dev/xvda ] && [ -e /sys/class/net/eth0 ]; do
  i=$((i + 1))
  [ $i -le 300 ] || { echo "XTB-LINUX FAIL no eth0 or xvda"; poweroff -f; }
  usleep 100000
done
ip link set eth0 up && ip addr add 169.254.0.3/16 dev eth0
xtb-dom0-peer udp-echo-server 7 &
echo "XTB-LINUX ready uptime=$(up)"
# the disk is timed after the UDP run (the server exits at XTB-NET-DONE)
wait
t0=$(up)
dd if=/dev/xvda of=/dev/null bs=1M count=32 iflag=direct 2>/dev/null
t1=$(up)
dd if=/dev/zero of=/dev/xvda bs=1M count=32 oflag=direct conv=fsync 2>/dev/null
t2=$(up)
echo "XTB-LINUX disk bytes=33554432 read_s=$(awk -v a=$t0 -v b=$t1 'BEGIN { print b - a }') write_s=$(awk -v a=$t1 -v b=$t2 'BEGIN { print b - a }')"
echo "XTB-LINUX done uptime=$(up)"
poweroff -f
