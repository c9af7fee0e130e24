//! The Unix-socket transport against a tiny socket server.
#![cfg(feature = "std")]
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

use xenpv_sys::io::xs_wire::XsdSockmsgType;
use xenpv_xenstore::transport::{TransportError, UnixTransport};
use xenpv_xenstore::wire::{HEADER_LEN, Header, Message, Reply, Request};
use xenpv_xenstore::{Client, Config, Error, Store};

fn serve_one(mut s: UnixStream, value: &'static [u8]) {
    let mut hdr = [0u8; HEADER_LEN];
    s.read_exact(&mut hdr).unwrap();
    let h = Header::parse(&hdr).unwrap();
    let mut payload = vec![0u8; h.len as usize];
    s.read_exact(&mut payload).unwrap();
    let mut whole = hdr.to_vec();
    whole.extend(&payload);
    let (msg, _) = Message::parse(&whole).unwrap();
    assert_eq!(
        Request::decode(&msg).unwrap(),
        Request::Read { path: "/vm" }
    );
    let mut out = vec![0u8; 4200];
    let n = Reply::Value(value)
        .encode(XsdSockmsgType::Read, h.req_id, 0, &mut out)
        .unwrap();
    // Dribble it out in two pieces with a pause: the client must wait.
    s.write_all(&out[..5]).unwrap();
    std::thread::sleep(Duration::from_millis(30));
    s.write_all(&out[5..n]).unwrap();
}

#[test]
fn read_over_a_socket_then_peer_closes() {
    let (a, b) = UnixStream::pair().unwrap();
    let server = std::thread::spawn(move || serve_one(b, b"hello"));
    let t = UnixTransport::from_stream(a, Duration::from_millis(20)).unwrap();
    let mut xs = Client::new(t, Config::default());
    assert_eq!(xs.read("/vm").unwrap(), b"hello");
    server.join().unwrap();
    // The server is gone (its end dropped): a typed transport error.
    let e = xs.read("/vm").unwrap_err();
    assert!(
        matches!(
            e,
            Error::Transport(TransportError::Closed) | Error::Transport(TransportError::Io(_))
        ),
        "{e:?}"
    );
    assert!(xs.is_broken());
}

#[test]
fn connect_by_path() {
    let dir = std::env::temp_dir().join(format!("xenpv-xs-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("socket");
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    let server = std::thread::spawn(move || serve_one(listener.accept().unwrap().0, b"x"));
    let mut xs = Client::new(UnixTransport::connect(&path).unwrap(), Config::default());
    assert_eq!(xs.read("/vm").unwrap(), b"x");
    server.join().unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(UnixTransport::connect(&path).is_err());
}
