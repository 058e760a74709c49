//! Chunked bodies (RFC 9112 §7.1): the chunk-size line, extensions, data, trailer section,
//! checked byte by byte outside the data, which is skipped in bulk.

use super::{Inspector, RejectReason, State};

/// Chunk-extension bytes one chunked message must stay below (hyper's limit, 16 KiB).
pub(super) const MAX_CHUNK_EXTENSION_BYTES: usize = 16 * 1024;

/// Position inside a chunked body (RFC 9112 §7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Chunk {
    /// Reading `chunk-size`; `digits` says whether a hex digit was seen.
    Size { size: u64, digits: bool },
    /// BWS after the size: only more BWS or `;` may follow.
    SizeBws { size: u64 },
    /// Inside `chunk-ext`, up to the CR.
    Extension { size: u64 },
    /// After the CR ending the chunk-size line.
    SizeLf { size: u64 },
    /// Skipping chunk data; `remaining` > 0.
    Data { remaining: u64 },
    /// Expecting the CR after chunk data.
    DataCr,
    /// Expecting the LF after chunk data.
    DataLf,
    /// At the start of a trailer field line or of the final CRLF.
    TrailerStart,
    /// Inside a trailer field name.
    TrailerName,
    /// Inside a trailer field value, up to the CR.
    TrailerValue,
    /// After the CR ending a trailer field line.
    TrailerLf,
    /// After the CR of the final CRLF.
    EndLf,
}

/// One step of the chunked-body state machine.
enum ChunkStep {
    Next(Chunk),
    End,
    Invalid,
}

impl Inspector {
    /// Feeds chunked-body bytes; returns what follows the body (or nothing).
    pub(super) fn feed_chunked<'a>(&mut self, mut chunk: Chunk, input: &'a [u8]) -> &'a [u8] {
        let mut i = 0;
        while i < input.len() {
            if let Chunk::Data { remaining } = chunk {
                let rest = input.len() - i;
                let skip = usize::try_from(remaining).map_or(rest, |r| r.min(rest));
                i += skip;
                let remaining = remaining - skip as u64;
                chunk = if remaining == 0 {
                    Chunk::DataCr
                } else {
                    Chunk::Data { remaining }
                };
                continue;
            }
            let byte = input[i];
            i += 1;
            match self.chunk_step(chunk, byte) {
                ChunkStep::Next(next) => chunk = next,
                ChunkStep::End => {
                    self.state = State::Head;
                    return &input[i..];
                }
                ChunkStep::Invalid => {
                    self.verdicts.reject_body(self.current);
                    self.stop(RejectReason::InvalidChunkedFraming.as_str());
                    return &[];
                }
            }
        }
        self.state = State::Chunked(chunk);
        &[]
    }

    /// One byte of the chunked grammar (RFC 9112 §7.1, §7.1.1, §7.1.2), outside chunk data.
    fn chunk_step(&mut self, chunk: Chunk, byte: u8) -> ChunkStep {
        use ChunkStep::{End, Invalid, Next};
        match chunk {
            Chunk::Size { size, digits } => match byte {
                b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                    let digit = u64::from(hex_value(byte));
                    match size.checked_mul(16).and_then(|s| s.checked_add(digit)) {
                        Some(size) => Next(Chunk::Size { size, digits: true }),
                        None => Invalid,
                    }
                }
                _ if !digits => Invalid,
                b'\r' => Next(Chunk::SizeLf { size }),
                b';' => Next(Chunk::Extension { size }),
                b' ' | b'\t' => Next(Chunk::SizeBws { size }),
                _ => Invalid,
            },
            Chunk::SizeBws { size } => match byte {
                b' ' | b'\t' => Next(Chunk::SizeBws { size }),
                b';' => Next(Chunk::Extension { size }),
                _ => Invalid,
            },
            Chunk::Extension { size } => match byte {
                b'\r' => Next(Chunk::SizeLf { size }),
                b'\t' | b' '..=b'~' | 0x80..=0xff => {
                    self.chunk_extension_bytes += 1;
                    if self.chunk_extension_bytes >= MAX_CHUNK_EXTENSION_BYTES {
                        Invalid
                    } else {
                        Next(Chunk::Extension { size })
                    }
                }
                _ => Invalid,
            },
            Chunk::SizeLf { size } => match (byte, size) {
                (b'\n', 0) => Next(Chunk::TrailerStart),
                (b'\n', remaining) => Next(Chunk::Data { remaining }),
                _ => Invalid,
            },
            Chunk::Data { .. } => unreachable!("chunk data is skipped in bulk by feed_chunked"),
            Chunk::DataCr => match byte {
                b'\r' => Next(Chunk::DataLf),
                _ => Invalid,
            },
            Chunk::DataLf => match byte {
                b'\n' => Next(Chunk::Size {
                    size: 0,
                    digits: false,
                }),
                _ => Invalid,
            },
            Chunk::TrailerStart if byte == b'\r' => Next(Chunk::EndLf),
            Chunk::EndLf => match byte {
                b'\n' => End,
                _ => Invalid,
            },
            Chunk::TrailerStart | Chunk::TrailerName | Chunk::TrailerValue | Chunk::TrailerLf => {
                self.trailer_bytes += 1;
                if self.trailer_bytes > self.max_head_bytes {
                    return Invalid;
                }
                match (chunk, byte) {
                    // A line starting with SP/HTAB (obs-fold) or any non-token byte fails here.
                    (Chunk::TrailerStart | Chunk::TrailerName, b) if is_tchar(b) => {
                        Next(Chunk::TrailerName)
                    }
                    (Chunk::TrailerName, b':') => Next(Chunk::TrailerValue),
                    (Chunk::TrailerValue, b'\r') => Next(Chunk::TrailerLf),
                    (Chunk::TrailerValue, b'\t' | b' '..=b'~' | 0x80..=0xff) => {
                        Next(Chunk::TrailerValue)
                    }
                    (Chunk::TrailerLf, b'\n') => Next(Chunk::TrailerStart),
                    _ => Invalid,
                }
            }
        }
    }
}

/// `tchar` (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}
