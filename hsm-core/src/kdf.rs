//! Password hashing: Argon2id (RFC 9106) with bounded, reused working memory.
//!
//! Each Argon2id computation needs [`ARGON2_MEMORY_KIB`] KiB of working memory. Allocated per
//! call, many concurrent logins each take a fresh 19 MiB from the allocator, spread over as
//! many threads (and malloc arenas) as the caller uses, and the process keeps it after they
//! end (seen: 200 concurrent logins took a node from 115 MB to 8 GB RSS). Here the memory is a
//! fixed set of at most [`kdf_slots`] buffers, allocated on first use and reused for the life
//! of the process: at most that many hashes run at once, whatever thread calls, and callers
//! beyond it wait for a buffer. Each buffer is zeroized after every use (it holds values
//! derived from the password).
//!
//! Admission control (refusing work instead of queueing it) belongs to the network layer,
//! which knows the caller; see `keyward-server`'s login gate.

use std::sync::{Condvar, Mutex, OnceLock};

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use zeroize::Zeroize;

use crate::error::{Error, Result};
use crate::users::Password;

/// Argon2id memory cost (RFC 9106 §4, OWASP's second recommended setting): 19 MiB.
pub(crate) const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
/// Argon2id passes.
const ARGON2_PASSES: u32 = 2;
/// Most Argon2id buffers the process keeps, whatever the number of cores.
const MAX_SLOTS: usize = 8;

/// How many password hashes may run at once: the number of cores, 1 to 8. This bounds the
/// memory password hashing uses to `kdf_slots() * 19 MiB`.
pub fn kdf_slots() -> usize {
    std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1)
        .clamp(1, MAX_SLOTS)
}

fn params() -> Result<Params> {
    Params::new(ARGON2_MEMORY_KIB, ARGON2_PASSES, 1, None)
        .map_err(|_| Error::Internal("argon2 params"))
}

/// The process's Argon2id working memory.
struct Pool {
    free: Mutex<(Vec<Vec<Block>>, usize)>,
    returned: Condvar,
    slots: usize,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        free: Mutex::new((Vec::new(), 0)),
        returned: Condvar::new(),
        slots: kdf_slots(),
    })
}

impl Pool {
    /// Runs `f` with a buffer of at least `blocks` blocks: a pooled one when `blocks` is the
    /// standard size (waiting until one is free), else a one-off allocation (a hash made with
    /// other parameters, e.g. by an older version).
    fn with_memory<R>(&self, blocks: usize, f: impl FnOnce(&mut [Block]) -> R) -> R {
        let standard = params().map(|p| p.block_count()).unwrap_or(0);
        if blocks != standard {
            let mut mem = vec![Block::default(); blocks];
            let r = f(&mut mem);
            mem.iter_mut().for_each(Zeroize::zeroize);
            return r;
        }
        let mut mem = {
            let mut g = self.free.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if let Some(m) = g.0.pop() {
                    break m;
                }
                if g.1 < self.slots {
                    g.1 += 1;
                    break vec![Block::default(); blocks];
                }
                g = self.returned.wait(g).unwrap_or_else(|e| e.into_inner());
            }
        };
        let r = f(&mut mem);
        mem.iter_mut().for_each(Zeroize::zeroize);
        self.free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .push(mem);
        self.returned.notify_one();
        r
    }
}

/// Argon2id of `password` with `salt` (raw bytes) and `params` into `out`, in pooled memory.
fn argon2id(password: &[u8], salt: &[u8], params: &Params, out: &mut [u8]) -> Result<()> {
    let a = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    pool()
        .with_memory(params.block_count(), |mem| {
            a.hash_password_into_with_memory(password, salt, out, mem)
        })
        .map_err(|_| Error::Crypto {
            operation: "argon2id",
        })
}

/// Hashes a password with Argon2id (19 MiB, 2 passes, 1 lane) and a random 16-byte salt;
/// returns a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`).
pub(crate) fn hash_password(p: &Password) -> Result<String> {
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| Error::Crypto {
        operation: "random",
    })?;
    let salt_string =
        SaltString::encode_b64(&salt).map_err(|_| Error::Internal("salt encoding"))?;
    let params = params()?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    argon2id(p.expose().as_bytes(), &salt, &params, &mut out)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|_| Error::Internal("argon2 params"))?,
        salt: Some(salt_string.as_salt()),
        hash: Some(Output::new(&out).map_err(|_| Error::Internal("argon2 output"))?),
    }
    .to_string();
    out.zeroize();
    Ok(phc)
}

/// Checks a password against a PHC string: recomputes Argon2id with the string's parameters
/// and salt and compares in constant time (`password_hash::Output`'s equality). `false` for a
/// string that is not an Argon2id PHC string.
pub(crate) fn verify_password(p: &Password, phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    if hash.algorithm != Algorithm::Argon2id.ident() {
        return false;
    }
    let (Ok(params), Some(salt), Some(expected)) = (Params::try_from(&hash), hash.salt, hash.hash)
    else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    if argon2id(p.expose().as_bytes(), salt, &params, &mut out).is_err() {
        return false;
    }
    let same = Output::new(&out).is_ok_and(|o| o == expected);
    out.zeroize();
    same
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};

    #[test]
    fn hashes_are_standard_argon2id_phc_strings_both_ways() {
        let p = Password::from("correct horse battery");
        let phc = hash_password(&p).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_password(&p, &phc));
        assert!(!verify_password(
            &Password::from("correct horse battery!"),
            &phc
        ));
        assert!(!verify_password(&p, "not a phc string"));
        // The argon2 crate's own verifier accepts our hash, and ours accepts its hash.
        let reference = Argon2::new(Algorithm::Argon2id, Version::V0x13, params().unwrap());
        let parsed = PasswordHash::new(&phc).unwrap();
        assert!(reference
            .verify_password(b"correct horse battery", &parsed)
            .is_ok());
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let theirs = reference
            .hash_password(b"correct horse battery", &salt)
            .unwrap()
            .to_string();
        assert!(verify_password(&p, &theirs));
        // Other parameters (e.g. an older, cheaper setting) still verify, outside the pool.
        let cheap = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(1024, 1, 1, None).unwrap(),
        )
        .hash_password(b"correct horse battery", &salt)
        .unwrap()
        .to_string();
        assert!(verify_password(&p, &cheap));
        // Argon2i and Argon2d strings are refused.
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, params().unwrap())
            .hash_password(b"correct horse battery", &salt)
            .unwrap()
            .to_string();
        assert!(!verify_password(&p, &argon2i));
    }

    #[test]
    fn concurrent_hashes_share_at_most_kdf_slots_buffers() {
        let p = Password::from("correct horse battery");
        let phc = hash_password(&p).unwrap();
        std::thread::scope(|s| {
            for _ in 0..(kdf_slots() * 3) {
                s.spawn(|| assert!(verify_password(&p, &phc)));
            }
        });
        // The pool is the process's: other tests may hold buffers now, but never more.
        let g = pool().free.lock().unwrap();
        assert!(g.1 >= 1 && g.1 <= kdf_slots(), "{} buffers made", g.1);
        assert!(g.0.len() <= g.1);
    }
}
