//! `keyward sign-file` (with a key on the `--server` nodes) and `keyward verify-file` (here,
//! no server): the glue between files and `keyward_client::codesign`, which builds and checks
//! the signatures.

use std::fs::File;
use std::path::Path;
use std::time::SystemTime;

use anyhow::{bail, Context, Result};
use keyward_client::codesign::{
    certificates_from_pem, Certificate, DetachedCms, FileDigest, Invalid, SignatureAlgorithm,
    TrustAnchors, Verified,
};
use keyward_client::Client;

use super::{key_handle, write_output};
use crate::cli::{Conn, SignFileArgs, SignatureFormat, VerifyFileArgs};

/// The certificates of the PEM file `path`.
fn read_certificates(path: &Path, what: &str) -> Result<Vec<Certificate>> {
    let pem =
        std::fs::read(path).with_context(|| format!("cannot read {what} {}", path.display()))?;
    certificates_from_pem(&pem).with_context(|| format!("{what} {}", path.display()))
}

/// The certificates of every file in `paths`, in order.
fn read_all(paths: &[impl AsRef<Path>], what: &str) -> Result<Vec<Certificate>> {
    let mut all = Vec::new();
    for p in paths {
        all.extend(read_certificates(p.as_ref(), what)?);
    }
    Ok(all)
}

/// The digest of the file `path` with `algorithm`'s hash, read in pieces.
fn hash_file(
    path: &Path,
    algorithm: keyward_client::codesign::DigestAlgorithm,
) -> Result<FileDigest> {
    let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    algorithm
        .hash_reader(file)
        .with_context(|| format!("cannot read {}", path.display()))
}

/// `keyward sign-file`.
pub(crate) fn sign_file(conn: &Conn, args: SignFileArgs) -> Result<()> {
    let mut chain = Vec::new();
    let cert = match &args.cert {
        Some(path) => {
            let mut certs = read_certificates(path, "the certificate file")?.into_iter();
            let signer = certs.next();
            chain.extend(certs);
            signer
        }
        None if args.format == SignatureFormat::Cms => {
            bail!("--format cms needs --cert: the signer's certificate (PEM) for the key")
        }
        None => None,
    };
    chain.extend(read_all(&args.chain, "the chain file")?);
    super::client_runtime()?.block_on(async {
        let remote = conn.connect().await?;
        let r = sign_inner(&remote.client, conn.user.as_deref(), &args, cert, chain).await;
        remote.finish(r).await
    })
}

async fn sign_inner(
    client: &Client,
    me: Option<&str>,
    args: &SignFileArgs,
    cert: Option<Certificate>,
    chain: Vec<Certificate>,
) -> Result<()> {
    let key = key_handle(client, me, &args.key, &["private"]).await?;
    // The certificate is checked against the key before anything is signed.
    let signer = client
        .code_signer(key, cert, chain, args.mechanism.as_deref())
        .await
        .with_context(|| format!("key {}", args.key))?;
    let digest = hash_file(&args.input, signer.algorithm().digest())?;
    let signature = match args.format {
        SignatureFormat::Cms => {
            client
                .sign_detached_cms(&signer, &digest, SystemTime::now())
                .await?
        }
        SignatureFormat::Raw => client.sign_digest_raw(&signer, &digest).await?,
    };
    write_output(Some(&args.out), &signature)?;
    println!(
        "signed {} ({}, {}, key version {}): {}",
        args.input.display(),
        match args.format {
            SignatureFormat::Cms => "cms",
            SignatureFormat::Raw => "raw",
        },
        signer.algorithm(),
        signer.key_version(),
        args.out.display()
    );
    Ok(())
}

/// `keyward verify-file`: prints `valid` and returns true, or prints `invalid: REASON` and
/// returns false. Files that cannot be read are errors.
pub(crate) fn verify_file(args: &VerifyFileArgs) -> Result<bool> {
    let roots = read_certificates(&args.ca_file, "the CA file")?;
    let mut untrusted = read_all(&args.untrusted, "the untrusted file")?;
    let cert = args
        .cert
        .as_deref()
        .map(|p| read_certificates(p, "the certificate file"))
        .transpose()?;
    let signature = std::fs::read(&args.sig)
        .with_context(|| format!("cannot read the signature {}", args.sig.display()))?;
    let verdict = match args.format {
        SignatureFormat::Cms => {
            untrusted.extend(cert.into_iter().flatten());
            let anchors = TrustAnchors::new(&roots, untrusted)?;
            verify_cms(&anchors, &args.input, &signature)?
        }
        SignatureFormat::Raw => {
            let Some(mut certs) = cert else {
                bail!("--format raw needs --cert: the signer's certificate (PEM)");
            };
            let signer = certs.remove(0);
            untrusted.extend(certs);
            let anchors = TrustAnchors::new(&roots, untrusted)?;
            let algorithm = SignatureAlgorithm::for_key(
                &signer.tbs_certificate.subject_public_key_info,
                args.mechanism.as_deref(),
            )?;
            let digest = hash_file(&args.input, algorithm.digest())?;
            anchors.verify_raw(&signer, algorithm, &digest, &signature)
        }
    };
    match verdict {
        Ok(Verified { .. }) => {
            println!("valid");
            Ok(true)
        }
        Err(reason) => {
            println!("invalid: {reason}");
            Ok(false)
        }
    }
}

fn verify_cms(
    anchors: &TrustAnchors,
    input: &Path,
    signature: &[u8],
) -> Result<Result<Verified, Invalid>> {
    let cms = match DetachedCms::from_der(signature) {
        Ok(cms) => cms,
        Err(reason) => return Ok(Err(reason)),
    };
    let digest = hash_file(input, cms.digest_algorithm())?;
    Ok(anchors.verify_cms(&cms, &digest))
}
