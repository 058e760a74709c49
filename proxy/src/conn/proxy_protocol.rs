//! The PROXY protocol (haproxy's proxy-protocol.txt, v1 and v2): a load balancer in front
//! of the proxy tells the client's address in a header before the TLS bytes.
//! [`parse_proxy_header`] is a pure function over `&[u8]` (tested on every prefix, fuzzed by
//! `fuzz/fuzz_targets/proxy_header.rs`); [`client_address`] reads it from a trusted peer.

use std::net::SocketAddr;
use std::time::Duration;

use keyward_config::ProxyProtocolConfig;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::metrics::metrics;

/// The PROXY protocol v2 signature (12 bytes).
const PROXY_V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 header, CRLF included (the spec's 107 bytes).
const PROXY_V1_MAX: usize = 107;
/// The longest v2 header accepted (16-byte fixed part plus addresses and TLVs).
const PROXY_V2_MAX: usize = 16 + 1024;

/// Parses a PROXY protocol v1 or v2 header (haproxy's proxy-protocol.txt, §2.1 and §2.2) at
/// the start of `buf`. `Ok(None)`: more bytes are needed. `Ok(Some((addr, len)))`: the header
/// is `len` bytes long and carries the client address `addr` (`None` for `LOCAL`/`UNKNOWN`:
/// use the TCP peer's). `Err`: not a valid header.
pub(crate) fn parse_proxy_header(
    buf: &[u8],
) -> Result<Option<(Option<SocketAddr>, usize)>, &'static str> {
    if buf.len() >= 12 && buf[..12] == PROXY_V2_SIGNATURE[..] {
        if buf.len() < 16 {
            return Ok(None);
        }
        let len = 16 + usize::from(u16::from_be_bytes([buf[14], buf[15]]));
        if len > PROXY_V2_MAX {
            return Err("PROXY v2 header too long");
        }
        if buf.len() < len {
            return Ok(None);
        }
        let header =
            ppp::v2::Header::try_from(&buf[..len]).map_err(|_| "malformed PROXY v2 header")?;
        let addr = match (header.command, header.addresses) {
            (ppp::v2::Command::Local, _) => None,
            (_, ppp::v2::Addresses::IPv4(a)) => {
                Some(SocketAddr::from((a.source_address, a.source_port)))
            }
            (_, ppp::v2::Addresses::IPv6(a)) => {
                Some(SocketAddr::from((a.source_address, a.source_port)))
            }
            _ => None,
        };
        return Ok(Some((addr, len)));
    }
    if buf.len() >= 6 && buf.starts_with(b"PROXY ") {
        let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
            if buf.len() >= PROXY_V1_MAX {
                return Err("PROXY v1 header too long");
            }
            return Ok(None);
        };
        if end + 2 > PROXY_V1_MAX {
            return Err("PROXY v1 header too long");
        }
        // The v1 header is ASCII (spec §2.1). Checking that here also keeps ppp from slicing a
        // multi-byte character after a stray CR (it panics there; found by fuzzing).
        let line = &buf[..end + 2];
        if !line.is_ascii() || line[..end].contains(&b'\r') {
            return Err("malformed PROXY v1 header");
        }
        let text = std::str::from_utf8(line).map_err(|_| "malformed PROXY v1 header")?;
        let header = ppp::v1::Header::try_from(text).map_err(|_| "malformed PROXY v1 header")?;
        let addr = match header.addresses {
            ppp::v1::Addresses::Tcp4(a) => {
                Some(SocketAddr::from((a.source_address, a.source_port)))
            }
            ppp::v1::Addresses::Tcp6(a) => {
                Some(SocketAddr::from((a.source_address, a.source_port)))
            }
            ppp::v1::Addresses::Unknown => None,
        };
        return Ok(Some((addr, end + 2)));
    }
    let could_be_v2 = PROXY_V2_SIGNATURE.starts_with(&buf[..buf.len().min(12)]);
    let could_be_v1 = b"PROXY ".starts_with(&buf[..buf.len().min(6)]);
    if could_be_v1 || could_be_v2 {
        Ok(None)
    } else {
        Err("no PROXY header")
    }
}

/// Reads a PROXY protocol header from `tcp` (see [`parse_proxy_header`]); returns the client
/// address it carries and the bytes read after it.
async fn read_proxy_header(
    tcp: &mut TcpStream,
) -> Result<(Option<SocketAddr>, Vec<u8>), &'static str> {
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 512];
    loop {
        let n = tcp
            .read(&mut chunk)
            .await
            .map_err(|_| "read error before the PROXY header")?;
        if n == 0 {
            return Err("connection closed before a PROXY header");
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some((addr, len)) = parse_proxy_header(&buf)? {
            return Ok((addr, buf[len..].to_vec()));
        }
    }
}

/// The client's address and the bytes read after the PROXY header, per the listener's
/// `proxy_protocol` settings: without them, the TCP peer and nothing. `None` when the
/// connection must be closed (an untrusted peer, a malformed or missing header); that is
/// counted in `keyward_proxy_protocol_rejected_total` and logged at debug level.
pub(super) async fn client_address(
    proxy_protocol: Option<&ProxyProtocolConfig>,
    tcp: &mut TcpStream,
    peer: SocketAddr,
    timeout: Duration,
) -> Option<(SocketAddr, Vec<u8>)> {
    let Some(pp) = proxy_protocol else {
        return Some((peer, Vec::new()));
    };
    let ip = peer.ip().to_canonical();
    if !pp.trusted_cidrs.iter().any(|net| net.contains(&ip)) {
        metrics().proxy_protocol_rejected.inc();
        tracing::debug!(%peer, "PROXY header expected from a trusted source only; connection refused");
        return None;
    }
    match tokio::time::timeout(timeout, read_proxy_header(tcp)).await {
        Ok(Ok((addr, rest))) => Some((addr.unwrap_or(peer), rest)),
        Ok(Err(reason)) => {
            metrics().proxy_protocol_rejected.inc();
            tracing::debug!(%peer, reason, "PROXY header refused");
            None
        }
        Err(_) => {
            metrics().proxy_protocol_rejected.inc();
            tracing::debug!(%peer, "no PROXY header before the handshake timeout");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_proxy_header;

    #[test]
    fn proxy_headers_v1_v2_partial_and_bad() {
        let v1 = b"PROXY TCP4 203.0.113.7 127.0.0.1 55555 443\r\nrest";
        let (addr, len) = parse_proxy_header(v1).unwrap().unwrap();
        assert_eq!(addr.unwrap().to_string(), "203.0.113.7:55555");
        assert_eq!(&v1[len..], b"rest");
        for cut in 0..len {
            assert_eq!(parse_proxy_header(&v1[..cut]), Ok(None), "cut at {cut}");
        }
        let unknown = b"PROXY UNKNOWN\r\n";
        assert_eq!(parse_proxy_header(unknown), Ok(Some((None, unknown.len()))));
        let mut v2 = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        v2.extend_from_slice(&[
            0x21, 0x11, 0, 12, 198, 51, 100, 9, 127, 0, 0, 1, 0x9c, 0x40, 1, 187,
        ]);
        let (addr, len) = parse_proxy_header(&v2).unwrap().unwrap();
        assert_eq!(addr.unwrap().to_string(), "198.51.100.9:40000");
        assert_eq!(len, v2.len());
        for cut in 0..len {
            assert_eq!(parse_proxy_header(&v2[..cut]), Ok(None), "cut at {cut}");
        }
        // LOCAL command: the peer's address is used.
        let mut local = v2.clone();
        local[12] = 0x20;
        assert_eq!(parse_proxy_header(&local).unwrap().unwrap().0, None);
        for bad in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"\x16\x03\x01",
            b"PROXY TCP4 999.0.0.1 127.0.0.1 1 2\r\n",
            b"PROXY TCP4 1.2.3.4\r\n",
        ] {
            assert!(parse_proxy_header(bad).is_err(), "{bad:?}");
        }
        // Found by cargo fuzz: a CR followed by a multi-byte UTF-8 character.
        let crash = b"PROXY \xdb\xafPROXY \xdb\xaf\xd4\xad\xca\xbf\r\xd4\xad\xca\xbf\r\n";
        assert!(parse_proxy_header(crash).is_err());
        let long = [b"PROXY ".as_slice(), &[b'A'; 200]].concat();
        assert!(parse_proxy_header(&long).is_err());
    }
}
