//! Model test: random reads, writes, flushes and discards, with the device
//! unplugged and replugged in between, against a `Vec<u8>` model of the
//! disk. Ring sizes, pool sizes and indirect limits vary per case.

mod common;

use common::*;
use proptest::prelude::*;
use xenpv_blkback::{BackConfig, RamImage};
use xenpv_blkfront::QueueConfig;
use xenpv_mock::toolstack::{self, VbdConfig};

const SECTORS: u64 = 256;

#[derive(Clone, Debug)]
enum Step {
    Write { sector: u64, sectors: u64, seed: u8 },
    Read { sector: u64, sectors: u64 },
    Flush,
    Discard { sector: u64, sectors: u64 },
    Reconnect,
}

fn range() -> impl Strategy<Value = (u64, u64)> {
    (0..SECTORS).prop_flat_map(|s| (Just(s), 1..=(SECTORS - s).min(200)))
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (range(), any::<u8>()).prop_map(|((sector, sectors), seed)| Step::Write { sector, sectors, seed }),
        4 => range().prop_map(|(sector, sectors)| Step::Read { sector, sectors }),
        1 => Just(Step::Flush),
        1 => range().prop_map(|(sector, sectors)| Step::Discard { sector, sectors }),
        1 => Just(Step::Reconnect),
    ]
}

fn configs() -> impl Strategy<Value = (QueueConfig, BackConfig)> {
    (
        0u32..=2,
        prop::sample::select(vec![16u16, 40, 96]),
        prop::sample::select(vec![0u32, 32, 256]),
        1u16..=3,
    )
        .prop_map(|(order, pool, indirect, queues)| {
            (
                QueueConfig {
                    pool_pages: pool,
                    max_indirect_segments: 64,
                    max_ring_page_order: order,
                    max_queues: queues,
                },
                BackConfig {
                    max_indirect_segments: indirect,
                    ..BackConfig::DEFAULT
                },
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn disk_matches_a_vec_model_across_reconnects(
        (fcfg, bcfg) in configs(),
        steps in prop::collection::vec(step(), 1..24),
    ) {
        let mut env = env();
        let mut model = vec![0u8; SECTORS as usize * 512];
        let (mut front, mut back, _bc, _) =
            connect_with(&mut env, RamImage::new(SECTORS as usize), fcfg, bcfg);
        for (i, s) in steps.into_iter().enumerate() {
            // Spread the I/O over the queues (multi-queue cases).
            let qi = i % front.queue_count();
            match s {
                Step::Write { sector, sectors, seed } => {
                    let data = pattern(sectors as usize * 512, seed);
                    run_backend(&mut back, |w| front.queue_at(qi).unwrap().write_blocking(sector, &data, w)).unwrap();
                    let at = sector as usize * 512;
                    model[at..at + data.len()].copy_from_slice(&data);
                }
                Step::Read { sector, sectors } => {
                    let mut buf = vec![0xA5u8; sectors as usize * 512];
                    run_backend(&mut back, |w| front.queue_at(qi).unwrap().read_blocking(sector, &mut buf, w)).unwrap();
                    let at = sector as usize * 512;
                    prop_assert_eq!(&buf[..], &model[at..at + buf.len()]);
                }
                Step::Flush => {
                    run_backend(&mut back, |w| front.queue_at(qi).unwrap().flush_blocking(w)).unwrap();
                }
                Step::Discard { sector, sectors } => {
                    run_backend(&mut back, |w| front.queue_at(qi).unwrap().discard_blocking(sector, sectors, false, w)).unwrap();
                    let at = sector as usize * 512;
                    model[at..at + sectors as usize * 512].fill(0);
                }
                Step::Reconnect => {
                    toolstack::remove_device(&env.xen, &env.dev).unwrap();
                    let (ports, image, r) = back.teardown();
                    r.unwrap();
                    for port in ports {
        env.bev.close(port).unwrap();
    }
                    front.teardown(&mut env.fev, |_, c| panic!("nothing was in flight: {c:?}")).unwrap();
                    env.dev = toolstack::add_vbd(&env.xen, env.fd.domid(), env.bd.domid(), DEVID, &VbdConfig::default()).unwrap();
                    let (f, b, _, _) = connect_with(&mut env, image, fcfg, bcfg);
                    front = f;
                    back = b;
                }
            }
            prop_assert!(front.queue_ref().in_flight() == 0);
        }
        prop_assert!(back.image().bytes() == &model[..]);
    }
}
