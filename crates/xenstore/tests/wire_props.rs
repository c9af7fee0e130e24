//! Codec round trips and decoder totality.
#![cfg(feature = "alloc")]
use proptest::prelude::*;
use xenpv_sys::io::xs_wire::{XSD_ERRORS, XsdSockmsgType};
use xenpv_xenstore::perms::{Access, Perm, PermList};
use xenpv_xenstore::wire::{
    Entries, HEADER_LEN, Header, MESSAGE_MAX, Message, PAYLOAD_MAX, Reply, Request, WatchEvent,
    WireError, XsError, check_path,
};

fn path() -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        prop::collection::vec("[A-Za-z0-9_-][A-Za-z0-9_@-]{0,11}", 1..6),
    )
        .prop_map(|(abs, c)| {
            let p = c.join("/");
            if abs { format!("/{p}") } else { p }
        })
}

fn perm() -> impl Strategy<Value = Perm> {
    (any::<u16>(), 0..4u8).prop_map(|(domid, a)| Perm {
        domid,
        access: [Access::None, Access::Read, Access::Write, Access::Both][a as usize],
    })
}

#[derive(Debug, Clone)]
enum OwnedReq {
    Read(String),
    Write(String, Vec<u8>),
    Mkdir(String),
    Rm(String),
    Directory(String),
    GetPerms(String),
    SetPerms(String, Vec<Perm>),
    Watch(String, String),
    Unwatch(String, String),
    TxStart,
    TxEnd(bool),
    DomPath(u16),
    Reset,
}

impl OwnedReq {
    fn borrow(&self) -> Request<'_> {
        match self {
            Self::Read(p) => Request::Read { path: p },
            Self::Write(p, v) => Request::Write { path: p, value: v },
            Self::Mkdir(p) => Request::Mkdir { path: p },
            Self::Rm(p) => Request::Rm { path: p },
            Self::Directory(p) => Request::Directory { path: p },
            Self::GetPerms(p) => Request::GetPerms { path: p },
            Self::SetPerms(p, l) => Request::SetPerms {
                path: p,
                perms: PermList::from_slice(l),
            },
            Self::Watch(p, t) => Request::Watch { path: p, token: t },
            Self::Unwatch(p, t) => Request::Unwatch { path: p, token: t },
            Self::TxStart => Request::TransactionStart,
            Self::TxEnd(c) => Request::TransactionEnd { commit: *c },
            Self::DomPath(d) => Request::GetDomainPath { domid: *d },
            Self::Reset => Request::ResetWatches,
        }
    }
}

fn request() -> impl Strategy<Value = OwnedReq> {
    let token = "[ -~]{1,20}";
    prop_oneof![
        path().prop_map(OwnedReq::Read),
        (path(), prop::collection::vec(any::<u8>(), 0..200))
            .prop_map(|(p, v)| OwnedReq::Write(p, v)),
        path().prop_map(OwnedReq::Mkdir),
        path().prop_map(OwnedReq::Rm),
        path().prop_map(OwnedReq::Directory),
        path().prop_map(OwnedReq::GetPerms),
        (path(), prop::collection::vec(perm(), 1..8)).prop_map(|(p, l)| OwnedReq::SetPerms(p, l)),
        (path(), token).prop_map(|(p, t)| OwnedReq::Watch(p, t)),
        (path(), token).prop_map(|(p, t)| OwnedReq::Unwatch(p, t)),
        Just(OwnedReq::TxStart),
        any::<bool>().prop_map(OwnedReq::TxEnd),
        (0..0x7ff0u16).prop_map(OwnedReq::DomPath),
        Just(OwnedReq::Reset),
    ]
}

proptest! {
    #[test]
    fn request_round_trip(r in request(), req_id: u32, tx_id: u32) {
        let req = r.borrow();
        let mut buf = vec![0u8; MESSAGE_MAX];
        let n = req.encode(req_id, tx_id, &mut buf).unwrap();
        let (msg, rest) = Message::parse(&buf[..n]).unwrap();
        prop_assert!(rest.is_empty());
        prop_assert_eq!(msg.header.req_id, req_id);
        prop_assert_eq!(msg.header.tx_id, tx_id);
        prop_assert_eq!(msg.header.len as usize, n - HEADER_LEN);
        prop_assert_eq!(Request::decode(&msg).unwrap(), req);
        // A buffer one byte short is refused, never overrun.
        let mut short = vec![0u8; n - 1];
        prop_assert_eq!(req.encode(req_id, tx_id, &mut short), Err(WireError::BufferTooSmall { needed: n }));
    }

    #[test]
    fn reply_round_trip(value in prop::collection::vec(any::<u8>(), 0..300), id in 1u32.., p in path(),
                        perms in prop::collection::vec(perm(), 1..6), names in prop::collection::vec("[a-z0-9]{1,8}", 0..6),
                        err in 0..16usize, req_id: u32) {
        let mut buf = vec![0u8; MESSAGE_MAX];
        let mut dir = Vec::new();
        for n in &names { dir.extend(n.as_bytes()); dir.push(0); }
        let dir_entries = Entries::decode(&dir).unwrap();
        let cases: Vec<(XsdSockmsgType, Reply<'_>)> = vec![
            (XsdSockmsgType::Read, Reply::Value(&value)),
            (XsdSockmsgType::Write, Reply::Ok),
            (XsdSockmsgType::TransactionStart, Reply::TransactionId(id)),
            (XsdSockmsgType::GetDomainPath, Reply::Path(&p)),
            (XsdSockmsgType::GetPerms, Reply::Perms(PermList::from_slice(&perms))),
            (XsdSockmsgType::Directory, Reply::Entries(dir_entries)),
            (XsdSockmsgType::Rm, Reply::Error(XsError::ALL[err])),
            (XsdSockmsgType::Read, Reply::Watch(WatchEvent { path: &p, token: "tok" })),
        ];
        for (ty, reply) in cases {
            let n = reply.encode(ty, req_id, 0, &mut buf).unwrap();
            let (msg, _) = Message::parse(&buf[..n]).unwrap();
            prop_assert_eq!(Reply::decode(ty, &msg).unwrap(), reply);
        }
        prop_assert_eq!(dir_entries.iter().collect::<Vec<_>>(), names.iter().map(String::as_str).collect::<Vec<_>>());
    }

    #[test]
    fn perm_round_trip(p in perm()) {
        let s = p.encode();
        prop_assert_eq!(Perm::parse(s.as_bytes()), Ok(p));
    }

    #[test]
    fn decoders_total_on_arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..600)) {
        let mut rest: &[u8] = &data;
        while let Ok((msg, tail)) = Message::parse(rest) {
            prop_assert!(msg.payload.len() <= PAYLOAD_MAX);
            for ty in XsdSockmsgType::ALL {
                let _ = Reply::decode(*ty, &msg);
            }
            let _ = Request::decode(&msg);
            rest = tail;
        }
        let _ = WatchEvent::decode(&data);
        let _ = Entries::decode(&data);
        let _ = PermList::from_wire(&data);
        xenpv_xenstore::fuzz::replies(&data);
    }

    #[test]
    fn structured_garbage_after_valid_header(ty in 0u32..25, len in 0u32..5000, payload in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut m = Header { ty, req_id: 1, tx_id: 0, len }.to_bytes().to_vec();
        m.extend(&payload);
        match Message::parse(&m) {
            Ok((msg, _)) => {
                prop_assert_eq!(msg.payload.len(), len as usize);
                for t in XsdSockmsgType::ALL { let _ = Reply::decode(*t, &msg); }
            }
            Err(WireError::PayloadTooLong(n)) => prop_assert!(n > PAYLOAD_MAX),
            Err(WireError::Truncated { .. }) => prop_assert!(payload.len() < len as usize),
            Err(e) => prop_assert!(false, "unexpected {e:?}"),
        }
        xenpv_xenstore::fuzz::replies(&m);
    }

    #[test]
    fn paths_with_bad_characters_are_refused(p in path(), bad in prop::sample::select(vec!['\0', ' ', '.', '\n', '*', 'é'])) {
        let s = format!("{p}{bad}x");
        prop_assert!(check_path(&s).is_err());
        let mut buf = vec![0u8; MESSAGE_MAX];
        prop_assert_eq!(Request::Read { path: &s }.encode(1, 0, &mut buf), Err(WireError::InvalidPath));
    }
}

#[test]
fn error_table_matches_xen() {
    for (e, &(errno, name)) in XsError::ALL.iter().zip(XSD_ERRORS.iter()) {
        assert_eq!(e.name(), name);
        assert_eq!(e.errno(), errno);
        assert_eq!(XsError::from_name(name.as_bytes()), Some(*e));
    }
    assert_eq!(XsError::from_name(b"ENOENT\0"), None);
}

#[test]
fn payload_limits_both_directions() {
    let mut buf = vec![0u8; MESSAGE_MAX + 100];
    // Largest legal write: "a\0" + 4094 bytes.
    let v = vec![7u8; PAYLOAD_MAX - 2];
    assert_eq!(
        Request::Write {
            path: "a",
            value: &v
        }
        .encode(1, 0, &mut buf),
        Ok(MESSAGE_MAX)
    );
    let v = vec![7u8; PAYLOAD_MAX - 1];
    assert_eq!(
        Request::Write {
            path: "a",
            value: &v
        }
        .encode(1, 0, &mut buf),
        Err(WireError::PayloadTooLong(PAYLOAD_MAX + 1))
    );
    let h = Header {
        ty: 2,
        req_id: 1,
        tx_id: 0,
        len: PAYLOAD_MAX as u32 + 1,
    }
    .to_bytes();
    assert_eq!(
        Header::parse(&h),
        Err(WireError::PayloadTooLong(PAYLOAD_MAX + 1))
    );
    assert_eq!(
        Header::parse(&h[..15]),
        Err(WireError::Truncated {
            needed: 16,
            got: 15
        })
    );
}

#[test]
fn payload_nul_rules() {
    let mut buf = [0u8; 128];
    let n = Request::Write {
        path: "p",
        value: b"v",
    }
    .encode(1, 0, &mut buf)
    .unwrap();
    assert_eq!(&buf[HEADER_LEN..n], b"p\0v"); // value not terminated
    let n = Request::Watch {
        path: "p",
        token: "t",
    }
    .encode(1, 0, &mut buf)
    .unwrap();
    assert_eq!(&buf[HEADER_LEN..n], b"p\0t\0");
    let n = Request::TransactionEnd { commit: false }
        .encode(1, 5, &mut buf)
        .unwrap();
    assert_eq!(&buf[HEADER_LEN..n], b"F\0");
    let n = Request::GetDomainPath { domid: 42 }
        .encode(1, 0, &mut buf)
        .unwrap();
    assert_eq!(&buf[HEADER_LEN..n], b"42\0");
    let perms = [
        Perm {
            domid: 1,
            access: Access::None,
        },
        Perm {
            domid: 0,
            access: Access::Both,
        },
    ];
    let n = Request::SetPerms {
        path: "p",
        perms: PermList::from_slice(&perms),
    }
    .encode(1, 0, &mut buf)
    .unwrap();
    assert_eq!(&buf[HEADER_LEN..n], b"p\0n1\0b0\0");
    let n = Request::ResetWatches.encode(1, 0, &mut buf).unwrap();
    assert_eq!(&buf[HEADER_LEN..n], b"\0");
    assert_eq!(
        Request::Watch {
            path: "p",
            token: ""
        }
        .encode(1, 0, &mut buf),
        Err(WireError::InvalidToken)
    );
    assert_eq!(
        Request::SetPerms {
            path: "p",
            perms: PermList::from_slice(&[])
        }
        .encode(1, 0, &mut buf),
        Err(WireError::BadPermission)
    );
    // Replies: a read's value may be empty; "OK" acks with or without NUL.
    for bad_perm in [&b"x1\0"[..], b"r\0", b"r70000\0", b"r1", b"r-1\0"] {
        assert!(PermList::from_wire(bad_perm).is_err(), "{bad_perm:?}");
    }
}

#[test]
fn empty_get_perms_reply_is_refused() {
    // The owner entry is mandatory: an XS_GET_PERMS reply without any entry
    // is malformed, as the encoder and the request decoder already say.
    let h = Header {
        ty: XsdSockmsgType::GetPerms.raw(),
        req_id: 1,
        tx_id: 0,
        len: 0,
    };
    let bytes = h.to_bytes();
    let (msg, _) = Message::parse(&bytes).unwrap();
    assert_eq!(
        Reply::decode(XsdSockmsgType::GetPerms, &msg),
        Err(WireError::BadPermission)
    );
    assert_eq!(PermList::from_wire(b""), Err(WireError::BadPermission));
    // The same message as a request: refused too.
    let mut req = Header {
        ty: XsdSockmsgType::SetPerms.raw(),
        len: 2,
        ..h
    }
    .to_bytes()
    .to_vec();
    req.extend(b"p\0");
    let (msg, _) = Message::parse(&req).unwrap();
    assert_eq!(Request::decode(&msg), Err(WireError::BadPermission));
    // One entry is enough.
    let mut one = Header { len: 3, ..h }.to_bytes().to_vec();
    one.extend(b"b0\0");
    let (msg, _) = Message::parse(&one).unwrap();
    let Ok(Reply::Perms(list)) = Reply::decode(XsdSockmsgType::GetPerms, &msg) else {
        panic!("one-entry list refused");
    };
    assert_eq!(
        list.owner(),
        Some(Perm {
            domid: 0,
            access: Access::Both
        })
    );
}
