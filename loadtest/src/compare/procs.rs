//! Child processes of a comparison: starting them pinned to a CPU, waiting until they
//! listen, stopping them, and reading their CPU time and resident memory from `/proc`.

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rustix::process::{kill_process, Pid, Signal};

/// How long a server may take to start listening, and to stop after SIGTERM.
const DEADLINE: Duration = Duration::from_secs(30);

/// A running server (or helper) process, stopped with SIGTERM (then SIGKILL) when dropped.
#[derive(Debug)]
pub(crate) struct Server {
    /// What it is, for messages.
    pub(crate) name: String,
    child: Child,
    /// Where its standard output and error go.
    pub(crate) log: PathBuf,
}

impl Server {
    /// Starts `cmd` pinned to `cpu` (through `taskset`, which execs it, so the PID is the
    /// server's), output to `log`.
    ///
    /// # Errors
    /// The log cannot be created or the process cannot be started.
    pub(crate) fn start(
        name: &str,
        cpu: usize,
        cmd: &mut Command,
        log: &Path,
    ) -> anyhow::Result<Server> {
        let out = fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let mut pinned = Command::new("taskset");
        pinned
            .arg("-c")
            .arg(cpu.to_string())
            .arg(cmd.get_program())
            .args(cmd.get_args())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => pinned.env(k, v),
                None => pinned.env_remove(k),
            };
        }
        if let Some(dir) = cmd.get_current_dir() {
            pinned.current_dir(dir);
        }
        let child = pinned
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", cmd.get_program()))?;
        Ok(Server {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
        })
    }

    /// The process ID.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until `addr` accepts TCP connections and, with `workers`, until the process
    /// has at least one child (an nginx worker). Fails when the process exits first or
    /// after 30 s, with the end of its log.
    ///
    /// # Errors
    /// As above.
    pub(crate) fn wait_listening(&mut self, addr: SocketAddr, workers: bool) -> anyhow::Result<()> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited during startup ({status}); its log ends:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            let listening = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok();
            if listening && (!workers || !descendants(self.pid()).is_empty()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} not listening on {addr} after {DEADLINE:?}; its log ends:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Fails if the process has exited.
    ///
    /// # Errors
    /// As above, with the end of its log.
    pub(crate) fn check_running(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait()? {
            Some(status) => bail!(
                "{} exited ({status}); its log ends:\n{}",
                self.name,
                self.log_tail()
            ),
            None => Ok(()),
        }
    }

    /// The last 20 lines of the log.
    pub(crate) fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// CPU time (user + system, all threads) of the process and its descendants.
    ///
    /// # Errors
    /// `/proc` cannot be read for the process.
    pub(crate) fn cpu(&self) -> anyhow::Result<Duration> {
        let mut ticks = 0;
        for pid in self.tree() {
            ticks += stat_cpu_ticks(pid)
                .with_context(|| format!("reading the CPU time of {} (pid {pid})", self.name))?;
        }
        let hz = rustix::param::clock_ticks_per_second();
        Ok(Duration::from_secs_f64(ticks as f64 / hz as f64))
    }

    /// Resident memory (VmRSS) of the process and its descendants, KiB.
    ///
    /// # Errors
    /// `/proc` cannot be read for the process.
    pub(crate) fn rss_kib(&self) -> anyhow::Result<u64> {
        let mut kib = 0;
        for pid in self.tree() {
            kib += vm_rss_kib(pid)
                .with_context(|| format!("reading the memory of {} (pid {pid})", self.name))?;
        }
        Ok(kib)
    }

    /// The process and its descendants.
    fn tree(&self) -> Vec<u32> {
        let mut all = vec![self.pid()];
        all.extend(descendants(self.pid()));
        all
    }

    /// SIGTERM to the process and its descendants, then SIGKILL to any left after 30 s.
    pub(crate) fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let children = descendants(self.pid());
        for pid in std::iter::once(self.pid()).chain(children.iter().copied()) {
            if let Some(pid) = Pid::from_raw(pid as i32) {
                let _ = kill_process(pid, Signal::TERM);
            }
        }
        let deadline = Instant::now() + DEADLINE;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) && children.iter().all(|p| !alive(*p)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for pid in children {
            if let Some(pid) = Pid::from_raw(pid as i32) {
                let _ = kill_process(pid, Signal::KILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.terminate();
    }
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Every process whose parent chain leads to `root` (scans `/proc/*/stat`).
fn descendants(root: u32) -> Vec<u32> {
    let mut parent_of: Vec<(u32, u32)> = Vec::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(ppid) = stat_fields(pid).and_then(|f| f.get(1).and_then(|p| p.parse().ok()))
            {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(parent_of.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    found.remove(0);
    found
}

/// The fields of `/proc/PID/stat` after the command name: index 0 is the state (field 3),
/// 1 the parent PID (field 4), 11 utime (field 14), 12 stime (field 15).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

fn stat_cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let f = stat_fields(pid).context("no /proc/PID/stat")?;
    let field = |i: usize| -> anyhow::Result<u64> {
        f.get(i)
            .and_then(|v| v.parse().ok())
            .context("malformed /proc/PID/stat")
    };
    Ok(field(11)? + field(12)?)
}

fn vm_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/PID/status")
}

/// A loopback TCP port that was free a moment ago (bound to port 0 and released).
///
/// # Errors
/// Binding fails.
pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Runs `cmd` to completion; fails with its output when it exits unsuccessfully.
///
/// # Errors
/// As above.
pub(crate) fn run_ok(what: &str, cmd: &mut Command) -> anyhow::Result<Output> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("{what}: cannot run {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_and_memory_of_a_process_tree() {
        let dir = tempfile::tempdir().unwrap();
        // A shell with a busy child: both count.
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "sh -c 'i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; sleep 30' & wait",
        ]);
        let mut s = Server::start("busy", 0, &mut cmd, &dir.path().join("log")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while s.cpu().unwrap() < Duration::from_millis(50) {
            assert!(Instant::now() < deadline, "no CPU time seen");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!descendants(s.pid()).is_empty());
        assert!(s.rss_kib().unwrap() > 0);
        s.check_running().unwrap();
        let child = descendants(s.pid())[0];
        s.stop();
        assert!(!alive(child), "the child was not stopped");
    }
}
