//! A moto S3 server (the S3-compatible server of the backup and envelope tests) on a free
//! loopback port, with one bucket; stopped by PID when dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{eventually, free_port, run, wait_for_port, Running, DEADLINE};

/// A moto S3 server on a free port, stopped (by PID) when dropped.
pub struct Moto {
    _process: Running,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

fn moto_server() -> PathBuf {
    // scripts/test installs moto into target/test-venv when the machine lacks it.
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-venv/bin/moto_server");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("moto_server")
}

impl Moto {
    /// Starts moto and creates `bucket`.
    pub fn start(bucket: &str) -> Moto {
        let port = free_port();
        let mut cmd = Command::new(moto_server());
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        let process = Running::spawn(cmd);
        let endpoint = format!("http://127.0.0.1:{port}");
        wait_for_port(SocketAddr::from(([127, 0, 0, 1], port)));
        eventually(DEADLINE, "moto answers", || {
            run(
                "curl",
                &["-sf", "-o", "/dev/null", &format!("{endpoint}/moto-api/")],
            )
            .0
        });
        let (ok, _, err) = run(
            "curl",
            &[
                "-sS",
                "-f",
                "--aws-sigv4",
                "aws:amz:us-east-1:s3",
                "--user",
                "testing:testing",
                "-X",
                "PUT",
                &format!("{endpoint}/{bucket}"),
            ],
        );
        assert!(ok, "create bucket: {err}");
        Moto {
            _process: process,
            endpoint,
        }
    }

    /// The `AWS_*` variables that point `object_store` (and keyward) at this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }
}
