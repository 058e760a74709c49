//! Envelope encryption of streams: [`Client::encrypt_stream`] and [`Client::decrypt_stream`].
//!
//! The content is encrypted here, on the client, with a fresh AES-256 data key that the HSM
//! made and wrapped under a key encryption key (KEK, `POST /v1/crypto/data-key`); only the
//! wrapped data key is stored, in the header. Decrypting asks the HSM to unwrap it (`POST
//! /v1/crypto/data-key/unwrap`). The content is cut into chunks of a fixed size, each one
//! AES-256-GCM (NIST SP 800-38D) sealed on its own, so both directions run in constant memory
//! (one chunk) and a reader verifies each chunk before it writes it. The chunk framing is the
//! STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár, "Online Authenticated-Encryption
//! and its Nonce-Reuse Misuse-Resistance", CRYPTO 2015), as Tink's streaming AEAD and age use
//! it: each chunk's nonce holds its position and whether it is the last, so reordering,
//! dropping, duplicating or truncating chunks fails authentication. Every chunk's additional
//! data is the SHA-256 of the header, so any header edit fails too. The primitives are
//! aws-lc-rs's; only the framing is ours.
//!
//! # Format, version 1 (all integers big-endian)
//!
//! | offset | bytes | field |
//! | --- | --- | --- |
//! | 0 | 6 | magic `KWENV\n` (`4b 57 45 4e 56 0a`) |
//! | 6 | 1 | format version: `1` |
//! | 7 | 1 | mechanism that wrapped the data key: `1` `aes-kwp` (RFC 5649), `2` `rsa-oaep-sha256` (RFC 8017 §7.1, SHA-256, MGF1-SHA-256, empty label) |
//! | 8 | 4 | chunk size `C`: plaintext bytes per chunk, 1024 to 4194304 (65536 written) |
//! | 12 | 8 | the KEK's key handle |
//! | 20 | 4 | the KEK's key version that wrapped the data key |
//! | 24 | 1 | `L`: the length of the KEK's label, 0 to 255 |
//! | 25 | `L` | the KEK's label, UTF-8 (for information: decryption uses the handle) |
//! | 25+L | 2 | `W`: the wrapped data key's length, 1 to 4096 |
//! | 27+L | `W` | the wrapped data key: `KWDK` 0x01 ‖ data key (5 + 32 bytes), wrapped (48 bytes for `aes-kwp`; the modulus length for `rsa-oaep-sha256`) |
//! | 27+L+W | 7 | nonce prefix, random |
//!
//! The header is `H = 34 + L + W` bytes. Then chunks `i = 0, 1, …, n-1`, with no framing of
//! their own: every chunk but the last holds `C` plaintext bytes and is `C + 16` bytes (the
//! AES-256-GCM ciphertext, then its 16-byte tag); the last holds 0 to `C` bytes (0 only for
//! empty content) and is 16 to `C + 16` bytes. A chunk is the last exactly when the file ends
//! after it. Chunk `i` is sealed with:
//!
//! - key: the 32-byte data key;
//! - nonce (12 bytes): the nonce prefix ‖ `i` as 4 bytes ‖ `01` for the last chunk, else `00`;
//! - additional data: SHA-256 (FIPS 180-4) of the header's `H` bytes.
//!
//! At most 2³² chunks (256 TiB with 64 KiB chunks). The data key is fresh for every object, so
//! nonces never repeat under one key; the random prefix also keeps them apart should a key be
//! reused.
//!
//! Why not CMS `AuthEnvelopedData` (RFC 5083/5084): it seals the whole content with one
//! AES-GCM operation, whose tag comes at the end, so a reader either holds all the content in
//! memory or writes plaintext it has not yet verified. Here every chunk is verified before a
//! byte of it is written, in one chunk of memory.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use zeroize::Zeroizing;

use crate::client::Client;
use crate::error::Result;
use crate::KeyClass;

/// The first bytes of every envelope.
pub const ENVELOPE_MAGIC: [u8; 6] = *b"KWENV\n";
/// The format version written and read.
pub const ENVELOPE_VERSION: u8 = 1;
/// The chunk size written: plaintext bytes per chunk.
pub const ENVELOPE_CHUNK_BYTES: u32 = 64 * 1024;
/// The smallest and largest chunk sizes a reader takes (the largest bounds its memory).
pub const ENVELOPE_CHUNK_RANGE: std::ops::RangeInclusive<u32> = 1024..=4 * 1024 * 1024;

const TAG_BYTES: usize = 16;
const PREFIX_BYTES: usize = 7;
const DATA_KEY_BYTES: u32 = 32;
const MAX_WRAPPED_BYTES: usize = 4096;

/// What went wrong in an envelope, on this machine. Never holds key bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// Reading the input failed.
    #[error("cannot read the input: {0}")]
    Read(#[source] std::io::Error),
    /// Writing the output failed.
    #[error("cannot write the output: {0}")]
    Write(#[source] std::io::Error),
    /// The input does not start with [`ENVELOPE_MAGIC`].
    #[error("not a Keyward envelope (the file does not start with KWENV)")]
    NotAnEnvelope,
    /// A format version this SDK does not read.
    #[error("envelope format version {0} is not supported (this version reads 1)")]
    UnsupportedVersion(u8),
    /// A header field out of its range (named).
    #[error("the envelope header is malformed: {0}")]
    BadHeader(&'static str),
    /// The input ends early: inside the header, inside a chunk's tag, or (what the last
    /// chunk's flag shows) after a chunk that is not the last.
    #[error("the file is truncated: {0}")]
    Truncated(String),
    /// Chunk `index` (from 0), which starts at byte `offset` of the file, does not
    /// authenticate: the file was changed or cut, or its chunks were reordered.
    #[error("chunk {index} (at byte {offset}) failed authentication: the file was changed, cut or its chunks reordered")]
    ChunkAuthentication {
        /// The chunk's index, from 0.
        index: u64,
        /// Where it starts in the file.
        offset: u64,
    },
    /// A mechanism other than `aes-kwp` and `rsa-oaep-sha256`.
    #[error("mechanism {0:?}: an envelope's data key is wrapped with aes-kwp or rsa-oaep-sha256")]
    Mechanism(String),
    /// More than 2³² chunks.
    #[error("the content is too large for one envelope (2^32 chunks)")]
    TooLarge,
    /// The header names a public key that no private key is linked to: the caller must name
    /// the private key that unwraps.
    #[error("key {handle} is a public key with no linked private key: name the private key that unwraps the data key")]
    NoUnwrappingKey {
        /// The KEK handle of the header.
        handle: u64,
    },
    /// aws-lc-rs refused a step (named).
    #[error("local cryptography failed: {0}")]
    Crypto(&'static str),
}

/// An envelope's header fields, as [`Client::encrypt_stream`] wrote them or
/// [`Client::decrypt_stream`] read them, and the content's size.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct EnvelopeInfo {
    /// The KEK's handle.
    pub kek: u64,
    /// The KEK's label when the envelope was made.
    pub kek_label: String,
    /// `aes-kwp` or `rsa-oaep-sha256`.
    pub mechanism: &'static str,
    /// The KEK version that wrapped the data key.
    pub key_version: u32,
    /// Plaintext bytes per chunk.
    pub chunk_bytes: u32,
    /// Chunks in the file.
    pub chunks: u64,
    /// Plaintext bytes.
    pub plaintext_bytes: u64,
}

fn mechanism_id(mechanism: &str) -> std::result::Result<(u8, &'static str), EnvelopeError> {
    match mechanism {
        "aes-kwp" => Ok((1, "aes-kwp")),
        "rsa-oaep-sha256" => Ok((2, "rsa-oaep-sha256")),
        other => Err(EnvelopeError::Mechanism(other.to_owned())),
    }
}

/// The header's fields.
struct Header {
    mechanism: &'static str,
    chunk_bytes: u32,
    kek: u64,
    key_version: u32,
    label: String,
    wrapped: Vec<u8>,
    prefix: [u8; PREFIX_BYTES],
}

impl Header {
    fn to_bytes(&self) -> std::result::Result<Vec<u8>, EnvelopeError> {
        let (id, _) = mechanism_id(self.mechanism)?;
        let label = truncated(&self.label, 255);
        let wrapped_len = u16::try_from(self.wrapped.len())
            .ok()
            .filter(|n| (1..=MAX_WRAPPED_BYTES).contains(&usize::from(*n)))
            .ok_or(EnvelopeError::BadHeader("wrapped data key length"))?;
        let mut h = Vec::with_capacity(34 + label.len() + self.wrapped.len());
        h.extend_from_slice(&ENVELOPE_MAGIC);
        h.push(ENVELOPE_VERSION);
        h.push(id);
        h.extend_from_slice(&self.chunk_bytes.to_be_bytes());
        h.extend_from_slice(&self.kek.to_be_bytes());
        h.extend_from_slice(&self.key_version.to_be_bytes());
        h.push(u8::try_from(label.len()).unwrap_or(0));
        h.extend_from_slice(label.as_bytes());
        h.extend_from_slice(&wrapped_len.to_be_bytes());
        h.extend_from_slice(&self.wrapped);
        h.extend_from_slice(&self.prefix);
        Ok(h)
    }

    /// Reads a header; returns it and its bytes.
    async fn read<R: AsyncRead + Unpin>(
        r: &mut R,
    ) -> std::result::Result<(Header, Vec<u8>), EnvelopeError> {
        let mut bytes = vec![0u8; 25];
        let short = || EnvelopeError::Truncated("the header is incomplete".into());
        if read_full(r, &mut bytes).await? < 6 || bytes[..6] != ENVELOPE_MAGIC {
            return Err(EnvelopeError::NotAnEnvelope);
        }
        if bytes[6] != ENVELOPE_VERSION {
            return Err(EnvelopeError::UnsupportedVersion(bytes[6]));
        }
        let mechanism = match bytes[7] {
            1 => "aes-kwp",
            2 => "rsa-oaep-sha256",
            _ => return Err(EnvelopeError::BadHeader("unknown mechanism")),
        };
        let be4 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let chunk_bytes = be4(&bytes[8..12]);
        if !ENVELOPE_CHUNK_RANGE.contains(&chunk_bytes) {
            return Err(EnvelopeError::BadHeader("chunk size out of range"));
        }
        let mut kek = [0u8; 8];
        kek.copy_from_slice(&bytes[12..20]);
        let key_version = be4(&bytes[20..24]);
        let label_len = usize::from(bytes[24]);
        let at = bytes.len();
        bytes.resize(at + label_len + 2, 0);
        if read_full(r, &mut bytes[at..]).await? < label_len + 2 {
            return Err(short());
        }
        let label = String::from_utf8_lossy(&bytes[25..25 + label_len]).into_owned();
        let wrapped_len = usize::from(u16::from_be_bytes([
            bytes[at + label_len],
            bytes[at + label_len + 1],
        ]));
        if !(1..=MAX_WRAPPED_BYTES).contains(&wrapped_len) {
            return Err(EnvelopeError::BadHeader("wrapped data key length"));
        }
        let at = bytes.len();
        bytes.resize(at + wrapped_len + PREFIX_BYTES, 0);
        if read_full(r, &mut bytes[at..]).await? < wrapped_len + PREFIX_BYTES {
            return Err(short());
        }
        let wrapped = bytes[at..at + wrapped_len].to_vec();
        let mut prefix = [0u8; PREFIX_BYTES];
        prefix.copy_from_slice(&bytes[at + wrapped_len..]);
        let header = Header {
            mechanism,
            chunk_bytes,
            kek: u64::from_be_bytes(kek),
            key_version,
            label,
            wrapped,
            prefix,
        };
        Ok((header, bytes))
    }
}

/// `s` cut to at most `max` bytes at a character boundary.
fn truncated(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
async fn read_full<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut [u8],
) -> std::result::Result<usize, EnvelopeError> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]).await.map_err(EnvelopeError::Read)? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// The chunk cipher: the data key, the nonce prefix and the header's digest.
struct Chunks {
    key: LessSafeKey,
    prefix: [u8; PREFIX_BYTES],
    aad: [u8; 32],
}

impl Chunks {
    fn new(
        data_key: &[u8],
        prefix: [u8; PREFIX_BYTES],
        header: &[u8],
    ) -> std::result::Result<Self, EnvelopeError> {
        let key = UnboundKey::new(&AES_256_GCM, data_key)
            .map_err(|_| EnvelopeError::Crypto("the data key is not an AES-256 key"))?;
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, header);
        let mut aad = [0u8; 32];
        aad.copy_from_slice(digest.as_ref());
        Ok(Chunks {
            key: LessSafeKey::new(key),
            prefix,
            aad,
        })
    }

    fn nonce(&self, index: u64, last: bool) -> std::result::Result<Nonce, EnvelopeError> {
        let index = u32::try_from(index).map_err(|_| EnvelopeError::TooLarge)?;
        let mut n = [0u8; 12];
        n[..PREFIX_BYTES].copy_from_slice(&self.prefix);
        n[PREFIX_BYTES..11].copy_from_slice(&index.to_be_bytes());
        n[11] = u8::from(last);
        Ok(Nonce::assume_unique_for_key(n))
    }

    /// Seals `buf` (plaintext) in place and appends the tag.
    fn seal(
        &self,
        index: u64,
        last: bool,
        buf: &mut Vec<u8>,
    ) -> std::result::Result<(), EnvelopeError> {
        let tag = self
            .key
            .seal_in_place_separate_tag(self.nonce(index, last)?, Aad::from(self.aad), buf)
            .map_err(|_| EnvelopeError::Crypto("aes-256-gcm seal"))?;
        buf.extend_from_slice(tag.as_ref());
        Ok(())
    }

    /// Opens `buf` (ciphertext ‖ tag) in place; the plaintext is its first `len - 16` bytes.
    fn open(
        &self,
        index: u64,
        last: bool,
        buf: &mut [u8],
    ) -> std::result::Result<usize, EnvelopeError> {
        let fail = EnvelopeError::Crypto("aes-256-gcm open");
        match self
            .key
            .open_in_place(self.nonce(index, last)?, Aad::from(self.aad), buf)
        {
            Ok(p) => Ok(p.len()),
            Err(_) => Err(fail),
        }
    }
}

impl Client {
    /// Encrypts everything `reader` gives into an envelope written to `writer` (the format in
    /// this module's documentation), with a fresh data key made by the HSM and wrapped under
    /// the KEK `kek` with `mechanism` (`aes-kwp`: an AES key with `wrap`; `rsa-oaep-sha256`: an
    /// RSA public key with `wrap`). Memory stays at one chunk whatever the size. The writer is
    /// shut down after the last chunk (which completes an object store's multipart upload).
    ///
    /// Errors: the API's (the KEK's policy), [`EnvelopeError`] for I/O.
    pub async fn encrypt_stream<R, W>(
        &self,
        mut reader: R,
        mut writer: W,
        kek: u64,
        mechanism: &str,
    ) -> Result<EnvelopeInfo>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let (_, mechanism) = mechanism_id(mechanism)?;
        let label = self.get_key(kek).await?.attributes.label;
        let data_key = self
            .generate_data_key(kek, mechanism, DATA_KEY_BYTES)
            .await?;
        let mut prefix = [0u8; PREFIX_BYTES];
        aws_lc_rs::rand::fill(&mut prefix).map_err(|_| EnvelopeError::Crypto("random"))?;
        let header = Header {
            mechanism,
            chunk_bytes: ENVELOPE_CHUNK_BYTES,
            kek,
            key_version: data_key.key_version,
            label,
            wrapped: data_key.wrapped.clone(),
            prefix,
        };
        let bytes = header.to_bytes()?;
        let chunks = Chunks::new(&data_key.plaintext, prefix, &bytes)?;
        drop(data_key);
        writer
            .write_all(&bytes)
            .await
            .map_err(EnvelopeError::Write)?;
        let c = ENVELOPE_CHUNK_BYTES as usize;
        // One chunk and one byte more: the byte that shows whether this chunk is the last.
        let mut buf = Zeroizing::new(Vec::with_capacity(c + TAG_BYTES + 1));
        let mut carry: Option<u8> = None;
        let (mut index, mut total) = (0u64, 0u64);
        loop {
            buf.clear();
            buf.extend(carry.take());
            let at = buf.len();
            buf.resize(c + 1, 0);
            let n = at + read_full(&mut reader, &mut buf[at..]).await?;
            let last = n <= c;
            if !last {
                carry = Some(buf[c]);
            }
            buf.truncate(n.min(c));
            total += buf.len() as u64;
            chunks.seal(index, last, &mut buf)?;
            writer.write_all(&buf).await.map_err(EnvelopeError::Write)?;
            index += 1;
            if last {
                break;
            }
        }
        writer.shutdown().await.map_err(EnvelopeError::Write)?;
        Ok(EnvelopeInfo {
            kek,
            kek_label: header.label,
            mechanism,
            key_version: header.key_version,
            chunk_bytes: ENVELOPE_CHUNK_BYTES,
            chunks: index,
            plaintext_bytes: total,
        })
    }

    /// Decrypts an envelope from `reader` to `writer`, verifying each chunk before writing
    /// it. The data key is unwrapped by the HSM with `unwrapping_key`, or (`None`) with the
    /// header's KEK; when that is an RSA public key, with its linked private key. The writer
    /// is shut down after the last chunk. On an error, what was written holds only verified
    /// chunks, but not all of them: a caller that needs all or nothing writes to a temporary
    /// file and renames it on success (what `keyward crypto decrypt-file` does).
    ///
    /// Errors: [`EnvelopeError`] (not an envelope, truncated, a chunk that fails
    /// authentication, I/O), the API's (the KEK's policy; `invalid_input` "unwrap failed"
    /// for a wrapped key that does not authenticate).
    pub async fn decrypt_stream<R, W>(
        &self,
        mut reader: R,
        mut writer: W,
        unwrapping_key: Option<u64>,
    ) -> Result<EnvelopeInfo>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let (header, bytes) = Header::read(&mut reader).await?;
        let kek = match unwrapping_key {
            Some(k) => k,
            None if header.mechanism == "rsa-oaep-sha256" => {
                let key = self.get_key(header.kek).await?;
                match (key.class, key.linked_handle) {
                    (KeyClass::Public, Some(private)) => private,
                    (KeyClass::Public, None) => {
                        return Err(EnvelopeError::NoUnwrappingKey { handle: header.kek }.into())
                    }
                    _ => header.kek,
                }
            }
            None => header.kek,
        };
        let data_key = self
            .unwrap_data_key(kek, header.mechanism, &header.wrapped, header.key_version)
            .await?;
        let chunks = Chunks::new(&data_key, header.prefix, &bytes)?;
        drop(data_key);
        let c = header.chunk_bytes as usize;
        let sealed = c + TAG_BYTES;
        let mut buf = Zeroizing::new(vec![0u8; sealed + 1]);
        let mut have = 0usize;
        let (mut index, mut total) = (0u64, 0u64);
        let mut offset = bytes.len() as u64;
        loop {
            have += read_full(&mut reader, &mut buf[have..]).await?;
            let last = have <= sealed;
            let len = have.min(sealed);
            if len < TAG_BYTES {
                return Err(EnvelopeError::Truncated(if index == 0 && len == 0 {
                    "no chunk follows the header".into()
                } else {
                    format!("chunk {index} (at byte {offset}) is shorter than its tag")
                })
                .into());
            }
            // The last chunk is kept to try it as a middle chunk should it fail (opening
            // overwrites the buffer): one that opens so is followed by chunks cut off.
            let kept = last.then(|| Zeroizing::new(buf[..len].to_vec()));
            let opened = match chunks.open(index, last, &mut buf[..len]) {
                Ok(n) => n,
                Err(_) => {
                    let cut = kept.is_some_and(|mut k| chunks.open(index, false, &mut k).is_ok());
                    return Err(if cut {
                        EnvelopeError::Truncated(format!(
                            "the last chunk is missing (the file ends after chunk {index}, which is not the last)"
                        ))
                    } else {
                        EnvelopeError::ChunkAuthentication { index, offset }
                    }
                    .into());
                }
            };
            writer
                .write_all(&buf[..opened])
                .await
                .map_err(EnvelopeError::Write)?;
            total += opened as u64;
            index += 1;
            offset += len as u64;
            if last {
                break;
            }
            buf[0] = buf[sealed];
            have = 1;
        }
        writer.shutdown().await.map_err(EnvelopeError::Write)?;
        Ok(EnvelopeInfo {
            kek: header.kek,
            kek_label: header.label,
            mechanism: header.mechanism,
            key_version: header.key_version,
            chunk_bytes: header.chunk_bytes,
            chunks: index,
            plaintext_bytes: total,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(label: &str) -> Header {
        Header {
            mechanism: "aes-kwp",
            chunk_bytes: ENVELOPE_CHUNK_BYTES,
            kek: 0x0102_0304_0506_0708,
            key_version: 3,
            label: label.to_owned(),
            wrapped: vec![0xAA; 40],
            prefix: [1, 2, 3, 4, 5, 6, 7],
        }
    }

    #[tokio::test]
    async fn the_header_is_the_documented_bytes_and_reads_back() {
        let bytes = header("kek").to_bytes().unwrap();
        let mut want = b"KWENV\n\x01\x01".to_vec();
        want.extend_from_slice(&65536u32.to_be_bytes());
        want.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 3, 3]);
        want.extend_from_slice(b"kek");
        want.extend_from_slice(&[0, 40]);
        want.extend_from_slice(&[0xAA; 40]);
        want.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(bytes, want);
        assert_eq!(bytes.len(), 34 + 3 + 40);
        let (h, read) = Header::read(&mut &bytes[..]).await.unwrap();
        assert_eq!(read, bytes);
        assert_eq!(
            (h.kek, h.key_version, h.label.as_str()),
            (0x0102_0304_0506_0708, 3, "kek")
        );
        // Every strict prefix is refused, none panics.
        for cut in 0..bytes.len() {
            assert!(Header::read(&mut &bytes[..cut]).await.is_err(), "{cut}");
        }
    }

    #[tokio::test]
    async fn bad_headers_are_refused_by_name() {
        let good = header("k").to_bytes().unwrap();
        let with = |at: usize, v: u8| {
            let mut b = good.clone();
            b[at] = v;
            b
        };
        let err =
            |b: Vec<u8>| async move { Header::read(&mut &b[..]).await.err().unwrap().to_string() };
        assert!(err(with(0, b'X')).await.contains("not a Keyward envelope"));
        assert!(err(with(6, 2)).await.contains("version 2"));
        assert!(err(with(7, 9)).await.contains("unknown mechanism"));
        assert!(err(with(8, 0xFF)).await.contains("chunk size"));
    }

    #[test]
    fn a_long_label_is_cut_at_a_character_boundary() {
        let label = "é".repeat(200);
        let bytes = header(&label).to_bytes().unwrap();
        assert_eq!(bytes[24], 254);
        assert!(std::str::from_utf8(&bytes[25..25 + 254]).is_ok());
    }

    #[test]
    fn nonces_hold_the_prefix_the_index_and_the_last_flag() {
        let c = Chunks::new(&[9u8; 32], [1, 2, 3, 4, 5, 6, 7], b"h").unwrap();
        let n = c.nonce(0x0A0B_0C0D, true).unwrap();
        assert_eq!(
            n.as_ref(),
            &[1, 2, 3, 4, 5, 6, 7, 0x0A, 0x0B, 0x0C, 0x0D, 1]
        );
        assert!(c.nonce(1 << 32, false).is_err());
    }
}
