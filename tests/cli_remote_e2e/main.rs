//! The remote CLI (`keyward login|user|key|crypto|audit --server ...`) through the real binary
//! against a real `keyward hsm serve` node. One module per concept; `common` starts nodes and
//! runs the CLI against them.

#[path = "../support/mod.rs"]
mod support;

mod accounts;
mod common;
mod crypto;
mod keys;
mod nodes;
mod proxy;
mod sessions;
mod sharing;
mod versions;
