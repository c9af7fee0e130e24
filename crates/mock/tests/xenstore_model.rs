//! Model-based test: random operations through a guest's ring (and by
//! dom0) against a plain map of path -> value, including the watch events
//! each operation must cause.

mod xs;

use std::collections::BTreeMap;

use proptest::prelude::*;
use xs::{Guest, domains};

const PATHS: [&str; 6] = [
    "data/a",
    "data/a/b",
    "data/a/b/c",
    "data/b",
    "data/c",
    "data/b/x",
];

#[derive(Clone, Debug)]
enum Op {
    Write(usize, u8),
    Dom0Write(usize, u8),
    Mkdir(usize),
    Rm(usize),
    Read(usize),
    Dir(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let p = 0..PATHS.len();
    prop_oneof![
        (p.clone(), any::<u8>()).prop_map(|(i, v)| Op::Write(i, v)),
        (p.clone(), any::<u8>()).prop_map(|(i, v)| Op::Dom0Write(i, v)),
        p.clone().prop_map(Op::Mkdir),
        p.clone().prop_map(Op::Rm),
        p.clone().prop_map(Op::Read),
        p.prop_map(Op::Dir),
    ]
}

fn parent(p: &str) -> &str {
    &p[..p.rfind('/').unwrap()]
}

/// Creates `p` and missing ancestors in the model.
fn create(m: &mut BTreeMap<String, Vec<u8>>, p: &str, v: Option<Vec<u8>>) {
    let mut q = parent(p);
    while !m.contains_key(q) {
        m.insert(q.to_owned(), Vec::new());
        q = parent(q);
    }
    match v {
        Some(v) => {
            m.insert(p.to_owned(), v);
        }
        None => {
            m.entry(p.to_owned()).or_default();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn guest_ops_match_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        let (xen, ds) = domains(1);
        let mut g = Guest::connect(&ds[0]);
        g.watch("data", "t").unwrap();
        prop_assert_eq!(g.take_events().len(), 1);
        let mut m: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        m.insert("data".into(), Vec::new());
        for op in ops {
            let mut events = 0;
            match op {
                Op::Write(i, v) => {
                    g.write(PATHS[i], &[v]).unwrap();
                    create(&mut m, PATHS[i], Some(vec![v]));
                    events = 1;
                }
                Op::Dom0Write(i, v) => {
                    xen.xenstore().write(&format!("/local/domain/1/{}", PATHS[i]), [v]).unwrap();
                    create(&mut m, PATHS[i], Some(vec![v]));
                    events = 1;
                }
                Op::Mkdir(i) => {
                    g.mkdir(PATHS[i]).unwrap();
                    if !m.contains_key(PATHS[i]) {
                        create(&mut m, PATHS[i], None);
                        events = 1;
                    }
                }
                Op::Rm(i) => {
                    let p = PATHS[i];
                    let r = g.rm(p);
                    if m.contains_key(p) {
                        prop_assert_eq!(r, Ok(()));
                        let gone: Vec<String> = m.keys().filter(|k| *k == p || k.starts_with(&format!("{p}/"))).cloned().collect();
                        for k in gone {
                            m.remove(&k);
                        }
                        events = 1;
                    } else if m.contains_key(parent(p)) {
                        prop_assert_eq!(r, Ok(()));
                    } else {
                        prop_assert_eq!(r, Err("ENOENT".to_string()));
                    }
                }
                Op::Read(i) => {
                    let want = m.get(PATHS[i]).cloned().ok_or_else(|| "ENOENT".to_string());
                    prop_assert_eq!(g.read(PATHS[i]), want);
                }
                Op::Dir(i) => {
                    let p = PATHS[i];
                    let want = if m.contains_key(p) {
                        Ok(m.keys().filter_map(|k| k.strip_prefix(&format!("{p}/")).filter(|r| !r.contains('/')).map(str::to_owned)).collect::<Vec<_>>())
                    } else {
                        Err("ENOENT".to_string())
                    };
                    prop_assert_eq!(g.directory(p), want);
                }
            }
            let ev = g.take_events();
            prop_assert_eq!(ev.len(), events, "{:?}", ev);
        }
        prop_assert_eq!(xen.xenstore().dropped_watch_events(1), 0);
    }
}
