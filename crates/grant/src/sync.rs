//! The table's bookkeeping lock: the crate family's one spin lock, from
//! `xenpv_shmem::sync` (so `--cfg loom` builds check it).

pub(crate) use xenpv_shmem::sync::SpinLock;
