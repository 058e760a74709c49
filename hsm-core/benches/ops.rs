//! The HSM's hot paths next to the same aws-lc-rs calls made directly (the physical limit).
//!
//! - `sign-<key>/{aws-lc-rs, Hsm::sign, KeySigner::sign}`: one signature of a 128-byte message
//!   (P-256 and P-384 ECDSA DER, RSA-2048 PSS-SHA256, Ed25519).
//! - `aes256gcm-encrypt-<size>/{aws-lc-rs, Hsm::encrypt}`: AES-256-GCM of 1 KiB and 16 KiB,
//!   with a fresh random 96-bit nonce in both (aws-lc-rs: `LessSafeKey` made once, the
//!   plaintext copied into an owned buffer, `seal_in_place_append_tag`).
//! - `p256-threads/{..., 1 thread, 2 threads}`: P-256 signatures on one key from one thread,
//!   and from two threads at once (each doing half), timed by wall clock: the reported time
//!   per signature is the aggregate, so `1 thread / 2 threads` is the speed-up.
//!
//! - `open-100k-audit/Hsm::open`: opening a store with 100,000 audit entries (the whole chain
//!   is verified at every open).
//!
//! Run: `cargo bench -p keyward-hsm --bench ops -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::time::{Duration, Instant};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::{self, SystemRandom};
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use keyward_hsm::test_util::TestHsm;
use keyward_hsm::{
    AttributeName, EncryptMechanism, KeyHandle, KeySpec, KeyTemplate, Session, SignInput,
    SignMechanism, SignatureEncoding,
};

const MESSAGE: [u8; 128] = [0x5a; 128];

struct Bench {
    hsm: TestHsm,
    me: Session,
}

impl Bench {
    fn new() -> Bench {
        let hsm = TestHsm::new();
        let me = hsm.service();
        Bench { hsm, me }
    }

    fn signing_key(&self, spec: KeySpec) -> KeyHandle {
        let label = spec.as_str();
        let private = KeyTemplate::labelled(label)
            .with(AttributeName::Sign, true)
            .with(AttributeName::Extractable, false);
        let public = KeyTemplate::labelled(label).with(AttributeName::Verify, true);
        self.hsm
            .generate_key_pair(&self.me, spec, &private, &public)
            .unwrap()
            .0
            .handle
    }
}

fn sign(c: &mut Criterion) {
    let b = Bench::new();
    let rng = SystemRandom::new();
    let cases: [(&str, KeySpec, SignMechanism); 4] = [
        ("p256", KeySpec::EcP256, SignMechanism::EcdsaSha256),
        ("p384", KeySpec::EcP384, SignMechanism::EcdsaSha384),
        ("rsa2048", KeySpec::Rsa2048, SignMechanism::RsaPssSha256),
        ("ed25519", KeySpec::Ed25519, SignMechanism::Ed25519),
    ];
    for (name, spec, mechanism) in cases {
        let handle = b.signing_key(spec);
        let signer = b.hsm.signer(&b.me, handle).unwrap();
        let mut g = c.benchmark_group(format!("sign-{name}"));
        match spec {
            KeySpec::EcP256 | KeySpec::EcP384 => {
                let alg = if spec == KeySpec::EcP256 {
                    &signature::ECDSA_P256_SHA256_ASN1_SIGNING
                } else {
                    &signature::ECDSA_P384_SHA384_ASN1_SIGNING
                };
                let pair = EcdsaKeyPair::generate(alg).unwrap();
                g.bench_function("aws-lc-rs", |x| {
                    x.iter(|| pair.sign(&rng, black_box(&MESSAGE)).unwrap())
                });
            }
            KeySpec::Rsa2048 => {
                let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
                let mut sig = vec![0u8; pair.public_modulus_len()];
                g.bench_function("aws-lc-rs", |x| {
                    x.iter(|| {
                        pair.sign(
                            &signature::RSA_PSS_SHA256,
                            &rng,
                            black_box(&MESSAGE),
                            &mut sig,
                        )
                        .unwrap();
                    })
                });
            }
            _ => {
                let pair = Ed25519KeyPair::generate().unwrap();
                g.bench_function("aws-lc-rs", |x| x.iter(|| pair.sign(black_box(&MESSAGE))));
            }
        }
        g.bench_function("Hsm::sign", |x| {
            x.iter(|| {
                b.hsm
                    .sign(
                        &b.me,
                        handle,
                        mechanism,
                        SignInput::Message(black_box(&MESSAGE)),
                        SignatureEncoding::Der,
                    )
                    .unwrap()
            })
        });
        g.bench_function("KeySigner::sign", |x| {
            x.iter(|| signer.sign(mechanism, black_box(&MESSAGE)).unwrap())
        });
        g.finish();
    }
}

fn aes_gcm(c: &mut Criterion) {
    let b = Bench::new();
    let template = KeyTemplate::labelled("aes")
        .with(AttributeName::Encrypt, true)
        .with(AttributeName::Decrypt, true);
    let handle = b
        .hsm
        .generate_secret_key(&b.me, KeySpec::Aes256, &template)
        .unwrap()
        .handle;
    let mut value = [0u8; 32];
    rand::fill(&mut value).unwrap();
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &value).unwrap());
    for (name, len) in [("1KiB", 1024usize), ("16KiB", 16 * 1024)] {
        let plaintext = vec![0xa5u8; len];
        let mut g = c.benchmark_group(format!("aes256gcm-encrypt-{name}"));
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function("aws-lc-rs", |x| {
            x.iter(|| {
                let mut nonce = [0u8; NONCE_LEN];
                rand::fill(&mut nonce).unwrap();
                let mut out = Vec::with_capacity(len + 16);
                out.extend_from_slice(black_box(&plaintext));
                key.seal_in_place_append_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::empty(),
                    &mut out,
                )
                .unwrap();
                out
            })
        });
        g.bench_function("Hsm::encrypt", |x| {
            x.iter(|| {
                b.hsm
                    .encrypt(
                        &b.me,
                        handle,
                        EncryptMechanism::AesGcm,
                        black_box(&plaintext),
                        b"",
                    )
                    .unwrap()
            })
        });
        g.finish();
    }
}

/// Runs `op` `iters` times split over `threads` threads at once; returns the wall time.
fn split<F: Fn() + Sync>(iters: u64, threads: u64, op: F) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let n = iters / threads + u64::from(t < iters % threads);
            let op = &op;
            s.spawn(move || {
                for _ in 0..n {
                    op();
                }
            });
        }
    });
    start.elapsed()
}

fn two_threads(c: &mut Criterion) {
    let b = Bench::new();
    let handle = b.signing_key(KeySpec::EcP256);
    let signer = b.hsm.signer(&b.me, handle).unwrap();
    let rng = SystemRandom::new();
    let pair = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
    let hsm_sign = || {
        black_box(
            b.hsm
                .sign(
                    &b.me,
                    handle,
                    SignMechanism::EcdsaSha256,
                    SignInput::Message(&MESSAGE),
                    SignatureEncoding::Der,
                )
                .unwrap(),
        );
    };
    let signer_sign = || {
        black_box(signer.sign(SignMechanism::EcdsaSha256, &MESSAGE).unwrap());
    };
    let direct_sign = || {
        black_box(pair.sign(&rng, &MESSAGE).unwrap());
    };
    let mut g = c.benchmark_group("p256-threads");
    for threads in [1u64, 2] {
        let suffix = if threads == 1 {
            "1 thread"
        } else {
            "2 threads"
        };
        g.bench_function(format!("aws-lc-rs {suffix}"), |x| {
            x.iter_custom(|iters| split(iters, threads, direct_sign))
        });
        g.bench_function(format!("Hsm::sign {suffix}"), |x| {
            x.iter_custom(|iters| split(iters, threads, hsm_sign))
        });
        g.bench_function(format!("KeySigner::sign {suffix}"), |x| {
            x.iter_custom(|iters| split(iters, threads, signer_sign))
        });
    }
    g.finish();
}

/// `open-100k-audit`: [`Hsm::open`] of a store with 100,000 audit entries, which verifies
/// the whole chain (and every key and user record, and the rollback anchor).
fn open_with_long_audit_trail(c: &mut Criterion) {
    let (store, hsm) = TestHsm::new().into_parts();
    hsm.test_fill_audit(100_000).unwrap();
    drop(hsm);
    let mut g = c.benchmark_group("open-100k-audit");
    g.sample_size(10);
    g.bench_function("Hsm::open", |b| b.iter(|| black_box(store.open())));
    g.finish();
}

criterion_group!(
    benches,
    sign,
    aes_gcm,
    two_threads,
    open_with_long_audit_trail
);
criterion_main!(benches);
