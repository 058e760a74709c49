//! Listening sockets: one per worker thread for each configured address (`SO_REUSEPORT`, as
//! nginx's `reuseport` and Envoy do), so that accepting connections spreads over every worker
//! instead of funnelling through one accept loop; the kernel hashes each new connection to
//! one of the sockets. Also the kernel's view of the accept queues, for metrics.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// Opens `count` listening sockets on `address`, each with an accept queue of `backlog`.
///
/// The address is first bound once without `SO_REUSEPORT`: that fails when any socket
/// already listens there (another Keyward with `SO_REUSEPORT` included, which the kernel
/// would otherwise let share the port silently) and resolves port 0. The `count` sockets then
/// bind to the resolved address.
pub(crate) fn bind(
    address: SocketAddr,
    count: usize,
    backlog: u32,
) -> io::Result<Vec<std::net::TcpListener>> {
    let resolved = {
        let probe = socket(address)?;
        probe.bind(&address.into())?;
        probe
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("bound to a non-IP address"))?
    };
    let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
    (0..count.max(1))
        .map(|_| {
            let s = socket(resolved)?;
            s.set_reuse_port(true)?;
            s.bind(&resolved.into())?;
            s.listen(backlog)?;
            s.set_nonblocking(true)?;
            Ok(s.into())
        })
        .collect()
}

/// A TCP socket for `address`'s family with `SO_REUSEADDR` (a restart binds at once despite
/// connections in TIME_WAIT), as `std::net::TcpListener::bind` makes it.
fn socket(address: SocketAddr) -> io::Result<Socket> {
    let s = Socket::new(
        Domain::for_address(address),
        Type::STREAM.cloexec(),
        Some(Protocol::TCP),
    )?;
    s.set_reuse_address(true)?;
    Ok(s)
}

/// `net.core.somaxconn`: the kernel's cap on every listen backlog (`None` if unreadable).
pub(crate) fn somaxconn() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// `ListenOverflows` and `ListenDrops` of `TcpExt` in `/proc/net/netstat`: connections dropped
/// since boot because an accept queue was full, and all drops at listening sockets (overflows
/// included). Counted by the kernel for the whole network namespace (in a container: the
/// pod's), not per socket.
pub(crate) fn listen_overflows() -> Option<(u64, u64)> {
    parse_netstat(&std::fs::read_to_string("/proc/net/netstat").ok()?)
}

/// [`listen_overflows`] from the text of `/proc/net/netstat`: pairs of lines, names then
/// values, each starting with its group (`TcpExt:`).
fn parse_netstat(text: &str) -> Option<(u64, u64)> {
    let mut lines = text.lines();
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        if !names.starts_with("TcpExt:") || !values.starts_with("TcpExt:") {
            continue;
        }
        let find = |name: &str| {
            names
                .split_whitespace()
                .position(|n| n == name)
                .and_then(|i| values.split_whitespace().nth(i))
                .and_then(|v| v.parse().ok())
        };
        return Some((find("ListenOverflows")?, find("ListenDrops")?));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netstat_counters_are_found_by_name() {
        let text = "TcpExt: SyncookiesSent ListenOverflows ListenDrops TCPHPHits\n\
                    TcpExt: 0 693 701 12\n\
                    IpExt: InNoRoutes ListenOverflows\n\
                    IpExt: 5 9\n";
        assert_eq!(parse_netstat(text), Some((693, 701)));
        assert_eq!(parse_netstat("IpExt: A\nIpExt: 1\n"), None);
        assert_eq!(parse_netstat("TcpExt: ListenDrops\nTcpExt: 3\n"), None);
        // This machine's own file parses.
        assert!(listen_overflows().is_some());
    }

    #[test]
    fn every_socket_listens_on_one_port_and_a_taken_port_is_refused() {
        let sockets = bind("127.0.0.1:0".parse().unwrap(), 3, 64).unwrap();
        let addrs: Vec<SocketAddr> = sockets.iter().map(|s| s.local_addr().unwrap()).collect();
        assert_eq!(addrs.len(), 3);
        assert!(addrs[0].port() != 0 && addrs.iter().all(|a| *a == addrs[0]));
        let again = bind(addrs[0], 2, 64).unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::AddrInUse);
        let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let taken = bind(plain.local_addr().unwrap(), 1, 64).unwrap_err();
        assert_eq!(taken.kind(), io::ErrorKind::AddrInUse);
    }
}
