//! Work in progress: see the crate description.
#![no_std]
