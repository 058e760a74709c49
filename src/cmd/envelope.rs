//! `keyward crypto encrypt-file` and `decrypt-file`: envelope encryption of files of any size
//! through the SDK's `encrypt_stream`/`decrypt_stream` (the format is documented there and in
//! the README), to and from files or an S3 bucket (`object_store`, set up as for backups by
//! [`crate::backup::s3_bucket`]), streaming both ways in constant memory.
//!
//! Nothing partial is left behind: a file output is written to a temporary file beside it
//! (mode 0600) and renamed only after the last chunk (decrypting: verified); on any failure it
//! is removed. An upload that fails is aborted, so no object appears.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use keyward_client::{Client, EnvelopeInfo};
use object_store::buffered::{BufReader, BufWriter};
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt as _};

use super::key_handle;
use crate::cli::{DecryptFileArgs, EncryptFileArgs, EnvelopeMechanism};
use crate::output;

/// Buffer of local file reads and writes: 1 MiB, so each blocking file call (a thread hop in
/// tokio) moves 16 chunks rather than one.
const FILE_BUFFER: usize = 1 << 20;

/// Writes out what `w` buffered for `out`.
async fn flush(mut w: tokio::io::BufWriter<&mut tokio::fs::File>, out: &Path) -> Result<()> {
    use tokio::io::AsyncWriteExt;
    w.flush()
        .await
        .with_context(|| format!("cannot write {}", out.display()))
}

/// Bytes per part of an upload, and per ranged read of a download.
const PART_BYTES: usize = 8 * 1024 * 1024;
/// Parts uploaded at once.
const PARTS_IN_FLIGHT: usize = 2;

/// `s3://BUCKET/KEY` → the bucket's store and the object's path.
fn s3_object(url: &str) -> Result<(Arc<dyn ObjectStore>, StorePath)> {
    let (bucket, key) = url
        .strip_prefix("s3://")
        .and_then(|rest| rest.split_once('/'))
        .filter(|(b, k)| !b.is_empty() && !k.is_empty() && !k.ends_with('/'))
        .with_context(|| format!("{url}: an object is s3://BUCKET/KEY"))?;
    let path = StorePath::parse(key).with_context(|| format!("{url}: not a valid object key"))?;
    let store = crate::backup::s3_bucket(bucket).with_context(|| format!("S3 bucket of {url}"))?;
    Ok((store, path))
}

/// A file being written beside its final name, removed when dropped unless renamed into
/// place.
struct Partial {
    tmp: PathBuf,
    done: bool,
}

impl Partial {
    /// The temporary file for `out`, after checking `out`: a new path, or with `force` a
    /// regular file that is not `input` (a device, FIFO, symbolic link or folder is refused:
    /// the rename would replace it with the plaintext).
    fn create(out: &Path, force: bool, input: Option<&Path>) -> Result<(Partial, tokio::fs::File)> {
        use std::os::unix::fs::OpenOptionsExt;
        match std::fs::symlink_metadata(out) {
            Ok(m) if !m.file_type().is_file() => bail!(
                "{} is not a regular file (a device, FIFO, symbolic link or folder): --out takes the path of a new or regular file",
                out.display()
            ),
            Ok(_) if input.is_some_and(|i| same_file(i, out)) => {
                bail!("--out {} is the input file", out.display())
            }
            Ok(_) if !force => bail!("{} exists; pass --force to replace it", out.display()),
            _ => {}
        }
        let name = out
            .file_name()
            .with_context(|| format!("{}: not a file name", out.display()))?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".{}.partial", std::process::id()));
        let tmp = out.with_file_name(tmp_name);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        Ok((
            Partial { tmp, done: false },
            tokio::fs::File::from_std(file),
        ))
    }

    /// Syncs `file` and renames it to `out`.
    async fn finish(mut self, file: tokio::fs::File, out: &Path) -> Result<()> {
        file.sync_all()
            .await
            .with_context(|| format!("cannot write {}", self.tmp.display()))?;
        drop(file);
        tokio::fs::rename(&self.tmp, out).await.with_context(|| {
            format!("cannot rename {} to {}", self.tmp.display(), out.display())
        })?;
        self.done = true;
        Ok(())
    }
}

/// Whether two paths name the same existing file.
fn same_file(a: &Path, b: &Path) -> bool {
    matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

/// A future that resolves at the first SIGINT (Ctrl-C) or SIGTERM: the command then returns
/// an error, and the temporary file is removed as on any failure. The handlers are installed
/// here, before the command starts, so a signal that comes at once is caught too.
fn interrupted() -> Result<impl std::future::Future<Output = Result<()>>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        bail!("interrupted: nothing was written")
    })
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

fn report(info: &EnvelopeInfo, json: bool, verb: &str, whence: &str) -> Result<()> {
    if json {
        return output::json(info);
    }
    println!(
        "{verb} {} bytes in {} chunks {whence}, data key wrapped with {} under key {} ({}) version {}",
        info.plaintext_bytes, info.chunks, info.mechanism, info.kek, info.kek_label, info.key_version
    );
    Ok(())
}

/// `keyward crypto encrypt-file`.
pub(crate) async fn encrypt_file(
    client: &Client,
    me: Option<&str>,
    a: EncryptFileArgs,
) -> Result<()> {
    let stop = interrupted()?;
    tokio::select! {
        r = encrypt_file_inner(client, me, a) => r,
        r = stop => r,
    }
}

async fn encrypt_file_inner(client: &Client, me: Option<&str>, a: EncryptFileArgs) -> Result<()> {
    let classes: &[&str] = match a.mechanism {
        EnvelopeMechanism::AesKwp => &["secret"],
        EnvelopeMechanism::RsaOaepSha256 => &["public"],
    };
    let kek = key_handle(client, me, &a.key, classes).await?;
    let input = tokio::io::BufReader::with_capacity(
        FILE_BUFFER,
        tokio::fs::File::open(&a.input)
            .await
            .with_context(|| format!("cannot read {}", a.input.display()))?,
    );
    let m = a.mechanism.as_str();
    let info = match (&a.to.out, &a.to.upload) {
        (Some(out), _) => {
            let (partial, mut file) = Partial::create(out, a.force, Some(&a.input))?;
            let mut w = tokio::io::BufWriter::with_capacity(FILE_BUFFER, &mut file);
            let info = client
                .encrypt_stream(input, &mut w, kek, m)
                .await
                .with_context(|| format!("cannot encrypt {}", a.input.display()))?;
            flush(w, out).await?;
            partial.finish(file, out).await?;
            info
        }
        (None, Some(url)) => {
            let (store, path) = s3_object(url)?;
            let mut upload = BufWriter::with_capacity(store, path, PART_BYTES)
                .with_max_concurrency(PARTS_IN_FLIGHT);
            match client.encrypt_stream(input, &mut upload, kek, m).await {
                Ok(info) => info,
                Err(e) => {
                    // No half-written object: the multipart upload is aborted.
                    let _ = upload.abort().await;
                    return Err(e)
                        .with_context(|| format!("cannot encrypt {} to {url}", a.input.display()));
                }
            }
        }
        (None, None) => bail!("give --out FILE or --upload s3://BUCKET/KEY"),
    };
    let whence = a.to.upload.clone().unwrap_or_else(|| {
        a.to.out
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    });
    report(&info, a.json, "encrypted", &format!("to {whence}"))
}

/// `keyward crypto decrypt-file`.
pub(crate) async fn decrypt_file(
    client: &Client,
    me: Option<&str>,
    a: DecryptFileArgs,
) -> Result<()> {
    let stop = interrupted()?;
    tokio::select! {
        r = decrypt_file_inner(client, me, a) => r,
        r = stop => r,
    }
}

async fn decrypt_file_inner(client: &Client, me: Option<&str>, a: DecryptFileArgs) -> Result<()> {
    let key = match &a.key {
        Some(k) => Some(key_handle(client, me, k, &["secret", "private"]).await?),
        None => None,
    };
    let (partial, mut file) = Partial::create(&a.out, a.force, a.from.input.as_deref())?;
    let (info, whence) = match (&a.from.input, &a.from.download) {
        (Some(input), _) => {
            let reader = tokio::io::BufReader::with_capacity(
                FILE_BUFFER,
                tokio::fs::File::open(input)
                    .await
                    .with_context(|| format!("cannot read {}", input.display()))?,
            );
            let mut w = tokio::io::BufWriter::with_capacity(FILE_BUFFER, &mut file);
            let info = client
                .decrypt_stream(reader, &mut w, key)
                .await
                .with_context(|| format!("cannot decrypt {}", input.display()))?;
            flush(w, &a.out).await?;
            (info, input.display().to_string())
        }
        (None, Some(url)) => {
            let (store, path) = s3_object(url)?;
            let meta = store
                .head(&path)
                .await
                .with_context(|| format!("cannot read {url}"))?;
            let reader = BufReader::with_capacity(store, &meta, PART_BYTES);
            let mut w = tokio::io::BufWriter::with_capacity(FILE_BUFFER, &mut file);
            let info = client
                .decrypt_stream(reader, &mut w, key)
                .await
                .with_context(|| format!("cannot decrypt {url}"))?;
            flush(w, &a.out).await?;
            (info, url.clone())
        }
        (None, None) => bail!("give --in FILE or --download s3://BUCKET/KEY"),
    };
    partial.finish(file, &a.out).await?;
    report(&info, a.json, "decrypted", &format!("from {whence}"))
}
