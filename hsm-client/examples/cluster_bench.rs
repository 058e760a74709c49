//! Cluster measurements for BENCHMARKS.md, run by `loadtest/cluster.sh` (which starts the
//! database and the nodes). Prints one JSON object.
//!
//! - `propagation --nodes A,B`: N times, a key pair generated on A, then signing with it on B
//!   until that succeeds; the time from A's answer to B's first signature (ms, p50/p99/max).
//! - `create --nodes A[,B,…]`: key pairs generated for S seconds by C concurrent callers,
//!   spread over the nodes; pairs per second.
//! - `sign --nodes A`: ECDSA P-256 signatures for S seconds by C concurrent callers on one
//!   key; signatures per second.
//!
//! ```text
//! cluster_bench MODE --nodes URL[,URL…] --ca FILE --user NAME --password PW [--n N]
//!               [--seconds S] [--concurrency C]
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keyward_client::{CallOptions, Client, ClientConfig, KeyTemplate, SignItem};

struct Args {
    mode: String,
    nodes: Vec<String>,
    ca: String,
    user: String,
    password: String,
    n: usize,
    seconds: u64,
    concurrency: usize,
}

fn args() -> Args {
    let mut it = std::env::args().skip(1);
    let mode = it.next().expect("a mode: propagation, create or sign");
    let mut a = Args {
        mode,
        nodes: Vec::new(),
        ca: String::new(),
        user: String::new(),
        password: String::new(),
        n: 200,
        seconds: 10,
        concurrency: 8,
    };
    while let Some(flag) = it.next() {
        let v = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--nodes" => a.nodes = v.split(',').map(str::to_owned).collect(),
            "--ca" => a.ca = v,
            "--user" => a.user = v,
            "--password" => a.password = v,
            "--n" => a.n = v.parse().expect("--n"),
            "--seconds" => a.seconds = v.parse().expect("--seconds"),
            "--concurrency" => a.concurrency = v.parse().expect("--concurrency"),
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

async fn client(nodes: &[String], a: &Args) -> Client {
    let config = ClientConfig::new(nodes.iter().map(String::as_str))
        .ca_cert_pem_file(&a.ca)
        .expect("the CA file");
    let c = Client::new(config).expect("a client");
    c.login(&a.user, a.password.as_str()).await.expect("login");
    c
}

async fn pair(c: &Client, label: &str) -> u64 {
    c.generate_pair(
        "ec-p256",
        &KeyTemplate::new(label).with("sign", true),
        &KeyTemplate::new(label).with("verify", true),
        CallOptions::default(),
    )
    .await
    .expect("generate a pair")
    .private
    .handle
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs `op` from `concurrency` tasks for `seconds`; returns operations per second.
async fn rate<F, Fut>(a: &Args, op: F) -> f64
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let done = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs(a.seconds);
    let start = Instant::now();
    let tasks: Vec<_> = (0..a.concurrency)
        .map(|t| {
            let (op, done) = (op.clone(), done.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                while Instant::now() < end {
                    op(t as u64 * 1_000_000 + i).await;
                    i += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("a task");
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let a = args();
    match a.mode.as_str() {
        "propagation" => {
            let on_a = client(&a.nodes[..1], &a).await;
            let on_b = client(&a.nodes[1..2], &a).await;
            let mut ms = Vec::with_capacity(a.n);
            for i in 0..a.n {
                let key = pair(&on_a, &format!("propagation-{i}")).await;
                let made = Instant::now();
                let item = SignItem::message(key, "ecdsa-sha256", b"propagation".to_vec());
                while on_b.sign(&item).await.is_err() {}
                ms.push(made.elapsed().as_secs_f64() * 1000.0);
            }
            ms.sort_by(f64::total_cmp);
            println!(
                "{{\"mode\":\"propagation\",\"n\":{},\"p50_ms\":{:.2},\"p99_ms\":{:.2},\"max_ms\":{:.2}}}",
                ms.len(),
                percentile(&ms, 0.5),
                percentile(&ms, 0.99),
                ms[ms.len() - 1]
            );
        }
        "create" => {
            let c = Arc::new(client(&a.nodes, &a).await);
            // Labels are unique per owner: one prefix per run.
            let run = std::process::id();
            let per_s = rate(&a, move |i| {
                let c = c.clone();
                async move {
                    pair(&c, &format!("create-{run}-{i}")).await;
                }
            })
            .await;
            println!(
                "{{\"mode\":\"create\",\"nodes\":{},\"concurrency\":{},\"pairs_per_s\":{per_s:.1}}}",
                a.nodes.len(),
                a.concurrency
            );
        }
        "sign" => {
            let c = Arc::new(client(&a.nodes, &a).await);
            let key = pair(&c, "sign-bench").await;
            let per_s = rate(&a, move |_| {
                let c = c.clone();
                async move {
                    let item = SignItem::message(key, "ecdsa-sha256", b"sign-bench".to_vec());
                    c.sign(&item).await.expect("sign");
                }
            })
            .await;
            println!(
                "{{\"mode\":\"sign\",\"concurrency\":{},\"signs_per_s\":{per_s:.1}}}",
                a.concurrency
            );
        }
        other => panic!("unknown mode {other}"),
    }
}
