//! Request heads: finding the end of a head (also split across reads), parsing it with
//! httparse and judging its framing (RFC 9112 §2.2, §3.2, §5.2, §6.1, §6.3).

use std::mem::MaybeUninit;

use super::{Inspector, RejectReason};

/// Most field lines a request head may carry; more is [`RejectReason::TooManyHeaders`].
/// hyper's own default limit (100) is lower, so hyper normally refuses such a head first.
pub(super) const MAX_HEADERS: usize = 128;

/// Incremental search for the empty line ending a head: LF, optional CR, LF. Used only when
/// a head is split across reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum EndOfHead {
    /// Inside a line.
    #[default]
    Line,
    /// Just after an LF.
    Lf,
    /// After LF then CR.
    LfCr,
}

impl EndOfHead {
    /// The index of the LF that ends the head, if `bytes` contains it.
    pub(super) fn find(&mut self, bytes: &[u8]) -> Option<usize> {
        for (i, &b) in bytes.iter().enumerate() {
            *self = match (*self, b) {
                (Self::Lf | Self::LfCr, b'\n') => {
                    *self = Self::Line;
                    return Some(i);
                }
                (_, b'\n') => Self::Lf,
                (Self::Lf, b'\r') => Self::LfCr,
                _ => Self::Line,
            };
        }
        None
    }
}

/// How the body after an accepted head is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body (or `Content-Length: 0`).
    Empty,
    /// `Content-Length`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// An upgrade or `CONNECT`: the stream becomes opaque after the head.
    Opaque,
}

/// The outcome of parsing a (possibly incomplete) head.
enum Parsed {
    /// A complete head of `len` bytes, judged.
    Complete {
        len: usize,
        judged: Result<Framing, RejectReason>,
    },
    /// More bytes are needed.
    Partial,
    /// httparse refused the bytes.
    Invalid(RejectReason),
}

impl Inspector {
    /// Feeds head bytes; returns what follows the head (or nothing if it is incomplete).
    pub(super) fn feed_head<'a>(&mut self, input: &'a [u8]) -> &'a [u8] {
        if self.head.is_empty() {
            // RFC 9112 §2.2: ignore empty lines before the request line (as httparse does).
            let start = input
                .iter()
                .position(|&b| b != b'\r' && b != b'\n')
                .unwrap_or(input.len());
            let input = &input[start..];
            if input.is_empty() {
                return input;
            }
            // Fast path: the whole head is in this read; parse it in place.
            return match parse_head(input) {
                Parsed::Complete { len, .. } if len > self.max_head_bytes => {
                    self.stop("request head larger than the limit");
                    &[]
                }
                Parsed::Complete { len, judged } => {
                    self.finish_head(judged);
                    &input[len..]
                }
                // httparse may refuse a head before its end. Decide only once the end is
                // here, as when the head is split, so that the outcome does not depend on
                // how the stream was cut into reads.
                Parsed::Invalid(reason) => match EndOfHead::Line.find(input) {
                    Some(lf) if lf >= self.max_head_bytes => {
                        self.stop("request head larger than the limit");
                        &[]
                    }
                    Some(_) => {
                        self.finish_head(Err(reason));
                        &[]
                    }
                    None => self.start_split_head(input),
                },
                Parsed::Partial => self.start_split_head(input),
            };
        }
        // Slow path: the head started in an earlier read.
        match self.end_of_head.find(input) {
            Some(lf) => {
                let take = lf + 1;
                if self.head.len() + take > self.max_head_bytes {
                    self.head = Vec::new();
                    self.stop("request head larger than the limit");
                    return &[];
                }
                self.head.extend_from_slice(&input[..take]);
                let judged = match parse_head(&self.head) {
                    Parsed::Complete { len, judged } if len == self.head.len() => judged,
                    Parsed::Invalid(reason) => Err(reason),
                    // The scan and httparse disagree about where the head ends: only for a
                    // head httparse cannot accept.
                    Parsed::Complete { .. } | Parsed::Partial => Err(RejectReason::MalformedHead),
                };
                // Keep the allocation for the next split head unless it grew large.
                if self.head.capacity() > 8 * 1024 {
                    self.head = Vec::new();
                } else {
                    self.head.clear();
                }
                self.finish_head(judged);
                &input[take..]
            }
            None => {
                if self.head.len() + input.len() >= self.max_head_bytes {
                    self.head = Vec::new();
                    self.stop("request head larger than the limit");
                } else {
                    self.head.extend_from_slice(input);
                }
                &[]
            }
        }
    }

    /// Keeps the start of a head whose end is in a later read (`input` holds no end).
    fn start_split_head<'a>(&mut self, input: &[u8]) -> &'a [u8] {
        if input.len() >= self.max_head_bytes {
            self.stop("request head larger than the limit");
        } else {
            // The scan finds no end here; it sets the scanner's state for the next read.
            self.end_of_head = EndOfHead::Line;
            let _ = self.end_of_head.find(input);
            self.head.extend_from_slice(input);
        }
        &[]
    }
}

/// Parses a head at the start of `buf` with httparse's default (strict) settings.
fn parse_head(buf: &[u8]) -> Parsed {
    let mut headers = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS];
    let mut request = httparse::Request::new(&mut []);
    match httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut request,
        buf,
        &mut headers,
    ) {
        Ok(httparse::Status::Complete(len)) => Parsed::Complete {
            len,
            judged: judge(&request),
        },
        Ok(httparse::Status::Partial) => Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => Parsed::Invalid(RejectReason::TooManyHeaders),
        Err(_) if has_obs_fold(buf) => Parsed::Invalid(RejectReason::ObsFold),
        Err(_) => Parsed::Invalid(RejectReason::MalformedHead),
    }
}

/// Decides whether a parsed head is framed unambiguously, and how its body is framed.
fn judge(request: &httparse::Request<'_, '_>) -> Result<Framing, RejectReason> {
    let http10 = request.version == Some(0);
    let mut content_length: Option<&[u8]> = None;
    let mut transfer_encoding: Option<&[u8]> = None;
    let mut hosts = 0_usize;
    let mut upgrade = false;
    let mut connection_upgrade = false;
    for header in request.headers.iter() {
        let name = header.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            if content_length.replace(header.value).is_some() {
                return Err(RejectReason::DuplicateContentLength);
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if transfer_encoding.replace(header.value).is_some() {
                return Err(RejectReason::DuplicateTransferEncoding);
            }
        } else if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            upgrade = true;
        } else if name.eq_ignore_ascii_case(b"connection") {
            connection_upgrade |= header
                .value
                .split(|&b| b == b',')
                .any(|option| trim_ows(option).eq_ignore_ascii_case(b"upgrade"));
        }
    }
    if hosts > 1 {
        return Err(RejectReason::DuplicateHost);
    }
    if hosts == 0 && !http10 {
        return Err(RejectReason::MissingHost);
    }
    let length = content_length.map(parse_content_length).transpose()?;
    let framing = match (transfer_encoding, length) {
        (Some(_), _) if http10 => return Err(RejectReason::TransferEncodingInHttp10),
        (Some(_), Some(_)) => return Err(RejectReason::ContentLengthWithTransferEncoding),
        (Some(value), None) => {
            check_transfer_encoding(value)?;
            Framing::Chunked
        }
        (None, Some(length)) => Framing::Length(length),
        (None, None) => Framing::Empty,
    };
    // An upgrade (RFC 9110 §7.8) is an HTTP/1.1 request with `Upgrade` and the `upgrade`
    // connection option; the service upgrades exactly those (and hyper only HTTP/1.1 ones).
    if (upgrade && connection_upgrade && !http10) || request.method == Some("CONNECT") {
        return Ok(Framing::Opaque);
    }
    Ok(framing)
}

/// `Content-Length = 1*DIGIT` (RFC 9110 §8.6), as a `u64`. A list is a duplicate.
fn parse_content_length(value: &[u8]) -> Result<u64, RejectReason> {
    let value = trim_ows(value);
    if value.contains(&b',') {
        return Err(RejectReason::DuplicateContentLength);
    }
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(RejectReason::InvalidContentLength);
    }
    value
        .iter()
        .try_fold(0_u64, |n, &d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
        .ok_or(RejectReason::InvalidContentLength)
}

/// The final coding must be `chunked`, applied once, and no other coding may be applied
/// (RFC 9112 §6.1, §6.3 item 4). Empty list elements are ignored (RFC 9110 §5.6.1).
fn check_transfer_encoding(value: &[u8]) -> Result<(), RejectReason> {
    let mut codings = value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|coding| !coding.is_empty())
        .peekable();
    let mut other_coding = false;
    while let Some(coding) = codings.next() {
        let chunked = coding.eq_ignore_ascii_case(b"chunked");
        let last = codings.peek().is_none();
        match (chunked, last) {
            (true, true) if other_coding => return Err(RejectReason::UnsupportedTransferCoding),
            (true, true) => return Ok(()),
            (true, false) | (false, true) => return Err(RejectReason::InvalidTransferEncoding),
            (false, false) => other_coding = true,
        }
    }
    Err(RejectReason::InvalidTransferEncoding)
}

/// Whether a field line of the head (up to its first empty line) starts with SP or HTAB.
fn has_obs_fold(head: &[u8]) -> bool {
    for pair in head.windows(2) {
        if pair[0] == b'\n' {
            match pair[1] {
                b' ' | b'\t' => return true,
                b'\r' | b'\n' => return false,
                _ => {}
            }
        }
    }
    false
}

pub(super) fn trim_ows(value: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_ows(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    &value[start..end]
}
