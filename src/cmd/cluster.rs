//! `keyward cluster status|nodes`: the nodes of a cluster store, read from its database (the
//! heartbeats every node records every 5 s, and the store's change sequence), as CloudHSM's
//! `cluster` commands list a cluster's HSMs.

use anyhow::Result;
use keyward_keystore::{Backend as _, NodeBeat};
use serde::Serialize;

use crate::cli::ClusterCommand;
use crate::data_dir;
use crate::output;

/// A node seen within this long is `up`.
const UP_WITHIN_MS: u64 = 15_000;

/// One node as `cluster status --json` prints it. `lag`: how many changes the node had not
/// applied when it wrote its last heartbeat.
#[derive(Serialize)]
struct NodeRow {
    node: String,
    state: &'static str,
    runs: String,
    started: String,
    last_heartbeat_s_ago: f64,
    applied_sequence: u64,
    lag: u64,
}

#[derive(Serialize)]
struct Status {
    store_sequence: u64,
    nodes_up: usize,
    nodes: Vec<NodeRow>,
}

fn row(beat: &NodeBeat) -> NodeRow {
    NodeRow {
        node: beat.node.clone(),
        state: if beat.seen_ms_ago <= UP_WITHIN_MS {
            "up"
        } else {
            "down"
        },
        runs: beat.version.clone(),
        started: output::utc(beat.started_unix_ms),
        last_heartbeat_s_ago: beat.seen_ms_ago as f64 / 1000.0,
        applied_sequence: beat.applied_seq,
        lag: beat.store_seq.saturating_sub(beat.applied_seq),
    }
}

/// Runs `keyward cluster …`.
pub(crate) fn run(cmd: ClusterCommand) -> Result<()> {
    match cmd {
        ClusterCommand::Status { data, out } => {
            let store = data_dir::open_cluster_store(&data.hsm())?;
            let sequence = keyward_hsm::store_sequence(&store)?;
            let nodes: Vec<NodeRow> = store.nodes()?.iter().map(row).collect();
            let status = Status {
                store_sequence: sequence,
                nodes_up: nodes.iter().filter(|n| n.state == "up").count(),
                nodes,
            };
            if out.json {
                return output::json(&status);
            }
            println!(
                "store sequence {}; {} of {} nodes up",
                status.store_sequence,
                status.nodes_up,
                status.nodes.len()
            );
            output::table(
                &[
                    "NODE",
                    "STATE",
                    "RUNS",
                    "STARTED",
                    "LAST HEARTBEAT",
                    "APPLIED",
                    "LAG",
                ],
                status.nodes.iter().map(|n| {
                    [
                        n.node.clone(),
                        n.state.to_owned(),
                        n.runs.clone(),
                        n.started.clone(),
                        format!("{:.1} s ago", n.last_heartbeat_s_ago),
                        n.applied_sequence.to_string(),
                        n.lag.to_string(),
                    ]
                }),
            );
            Ok(())
        }
        ClusterCommand::Nodes { data, all } => {
            let store = data_dir::open_cluster_store(&data.hsm())?;
            for beat in store.nodes()? {
                if all || beat.seen_ms_ago <= UP_WITHIN_MS {
                    println!("{}", beat.node);
                }
            }
            Ok(())
        }
    }
}
