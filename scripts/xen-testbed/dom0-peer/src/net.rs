//! dom0's tools for the network and disk steps (subcommands):
//!
//! * `udp-echo ADDR:PORT COUNT STEP`: sends COUNT datagrams of mixed sizes
//!   (64 to 1472 bytes, [`size`]) to an echo service, at most [`WINDOW`] in
//!   flight, resending any not echoed within [`RESEND`]; checks every echo
//!   byte for byte and prints `XTB-RESULT STEP PASS|FAIL ...` with the rate;
//! * `udp-send ADDR:PORT TEXT`: one datagram;
//! * `udp-echo-server PORT`: echoes every datagram to its sender until one
//!   reads `XTB-NET-DONE` (the Linux reference guest runs this);
//! * `pattern LEN`: writes the bytes the guest writes in step blk-b to
//!   stdout (`examples/pvh-guest/src/blk.rs`, `written_byte`).
//!
//! Datagram `seq` (shared with `examples/pvh-guest/src/net.rs`): bytes
//! 0..4 `seq`, 4..6 the length (little-endian), then [`udp_byte`].

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// Datagrams in flight at most.
const WINDOW: usize = 16;
/// A datagram not echoed within this is sent again.
const RESEND: Duration = Duration::from_millis(300);
/// The whole exchange must be over by then.
const DEADLINE: Duration = Duration::from_secs(150);

/// Byte `i` of datagram `seq`.
fn udp_byte(seq: u32, i: usize) -> u8 {
    (seq.wrapping_mul(31) as usize ^ i.wrapping_mul(7)) as u8 ^ 0x5a
}

/// Size of datagram `seq`: 64 to 1472 bytes (both ends included often).
fn size(seq: u32) -> usize {
    match seq % 10 {
        0 => 64,
        1 => 1472,
        _ => 64 + (seq as usize * 937) % (1472 - 64 + 1),
    }
}

fn datagram(seq: u32) -> Vec<u8> {
    let n = size(seq);
    let mut d: Vec<u8> = (0..n).map(|i| udp_byte(seq, i)).collect();
    d[..4].copy_from_slice(&seq.to_le_bytes());
    d[4..6].copy_from_slice(&(n as u16).to_le_bytes());
    d
}

fn udp_echo(to: SocketAddr, count: u32) -> Result<String, String> {
    let sock = UdpSocket::bind("0.0.0.0:0").map_err(|e| format!("bind: {e}"))?;
    sock.connect(to).map_err(|e| format!("connect {to}: {e}"))?;
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let mut next = 0u32;
    let mut outstanding: BTreeMap<u32, Instant> = BTreeMap::new();
    let (mut echoed, mut resent, mut duplicates, mut bytes) = (0u32, 0u64, 0u64, 0u64);
    let mut first_bad: Option<String> = None;
    let mut buf = vec![0u8; 65536];
    while echoed < count {
        if start.elapsed() > DEADLINE {
            return Err(format!(
                "{echoed} of {count} echoed in {}s ({resent} resent)",
                DEADLINE.as_secs()
            ));
        }
        while outstanding.len() < WINDOW && next < count {
            sock.send(&datagram(next))
                .map_err(|e| format!("send: {e}"))?;
            outstanding.insert(next, Instant::now());
            next += 1;
        }
        match sock.recv(&mut buf) {
            Ok(n) => {
                let got = &buf[..n];
                let seq = got
                    .get(..4)
                    .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]));
                match seq {
                    Some(seq) if outstanding.remove(&seq).is_some() => {
                        echoed += 1;
                        bytes += n as u64;
                        let want = datagram(seq);
                        if got != want.as_slice() && first_bad.is_none() {
                            let at = got.iter().zip(&want).position(|(a, b)| a != b);
                            first_bad = Some(format!(
                                "datagram {seq}: {n} bytes back of {}, first difference at {at:?}",
                                want.len()
                            ));
                        }
                    }
                    _ => duplicates += 1,
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(format!("recv: {e}")),
        }
        let now = Instant::now();
        for (&seq, sent) in outstanding.iter_mut() {
            if now.duration_since(*sent) > RESEND {
                sock.send(&datagram(seq))
                    .map_err(|e| format!("send: {e}"))?;
                *sent = now;
                resent += 1;
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let rate = f64::from(echoed) / secs;
    let summary = format!(
        "{echoed} datagrams of 64-1472 bytes ({bytes} bytes) echoed in {secs:.2}s: \
         {rate:.0} datagrams/s, {resent} resent, {duplicates} duplicates; rate={rate:.0}"
    );
    match first_bad {
        Some(bad) => Err(format!("{bad}; {summary}")),
        None => Ok(format!("every byte checked; {summary}")),
    }
}

/// Runs a subcommand if `args` names one; `None` otherwise.
pub fn subcommand(args: &[String]) -> Option<i32> {
    let addr =
        |s: &String| -> Result<SocketAddr, String> { s.parse().map_err(|e| format!("{s}: {e}")) };
    match args {
        [cmd, to, count, step] if cmd == "udp-echo" => {
            let r = addr(to).and_then(|to| {
                let count = count.parse().map_err(|e| format!("{count}: {e}"))?;
                udp_echo(to, count)
            });
            let (verdict, detail) = match &r {
                Ok(s) => ("PASS", s),
                Err(s) => ("FAIL", s),
            };
            println!("XTB-RESULT {step} {verdict} {detail}");
            Some(i32::from(r.is_err()))
        }
        [cmd, to, text] if cmd == "udp-send" => {
            let r = addr(to).and_then(|to| {
                let sock = UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
                sock.send_to(text.as_bytes(), to).map_err(|e| e.to_string())
            });
            if let Err(e) = &r {
                eprintln!("udp-send: {e}");
            }
            Some(i32::from(r.is_err()))
        }
        [cmd, port] if cmd == "udp-echo-server" => {
            let r = echo_server(port);
            if let Err(e) = &r {
                eprintln!("udp-echo-server: {e}");
            }
            Some(i32::from(r.is_err()))
        }
        [cmd, len] if cmd == "pattern" => {
            let Ok(len) = len.parse::<usize>() else {
                eprintln!("pattern: bad length {len}");
                return Some(2);
            };
            let data: Vec<u8> = (0..len).map(written_byte).collect();
            Some(i32::from(std::io::stdout().write_all(&data).is_err()))
        }
        _ => None,
    }
}

/// Byte `i` of the guest's file in step blk-b.
fn written_byte(i: usize) -> u8 {
    ((i >> 9) as u8).wrapping_mul(13) ^ (i as u8).wrapping_mul(101) ^ 0xa5
}

fn echo_server(port: &str) -> Result<(), String> {
    let sock = UdpSocket::bind(format!("0.0.0.0:{port}")).map_err(|e| format!("bind: {e}"))?;
    let mut buf = vec![0u8; 65536];
    let mut echoed = 0u64;
    loop {
        let (n, from) = sock.recv_from(&mut buf).map_err(|e| format!("recv: {e}"))?;
        if &buf[..n] == b"XTB-NET-DONE" {
            println!("udp-echo-server: {echoed} datagrams echoed");
            return Ok(());
        }
        sock.send_to(&buf[..n], from)
            .map_err(|e| format!("send: {e}"))?;
        echoed += 1;
    }
}
