//! The register of Keyward's issuing CAs: each CA (record kind `ca`, id = its name),
//! encrypted and listed in the manifest like every record, so a deleted, re-added or
//! rolled-back one is refused; and each certificate it issued (kind `cert`, id = `CA:SERIAL`),
//! encrypted and bound to its kind, id and version, written once and never changed, and kept
//! out of the manifest, which every commit rewrites (a register of any size costs each
//! issuance the same). What must not go back, a revocation, lives in the CA record: a
//! certificate's status is always read from there, so a deleted or older `cert` record can
//! make a certificate unknown, never valid again.
//!
//! The HSM decides who may act on a CA: whoever may sign with its key (its owner, and the
//! crypto-users it is shared with) creates, issues, revokes and publishes CRLs; every one of
//! these is one commit with its audit entry (`ca.create`, `ca.issue`, `ca.revoke`, `ca.crl`).
//! What a CA certificate, CRL or OCSP response holds (X.509, RFC 5280 / RFC 6960) is built by
//! the API (`keyward-server`'s `ca/`); this module keeps the records and the rules about them.
//!
//! Records are read from the store when asked for (CAs are few, a certificate is looked up by
//! its id), never cached: after this node [caught up](Hsm::catch_up_if_moved), each must be at
//! least the version the manifest records.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::*;

/// Longest CA name.
pub const CA_NAME_MAX: usize = 64;

/// One issuing CA.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaRecord {
    /// `[a-z0-9][a-z0-9_.-]*`, at most [`CA_NAME_MAX`] bytes.
    pub name: String,
    /// Its private key (in this HSM; signs, not extractable).
    pub key: KeyHandle,
    /// Who created it.
    pub owner: String,
    /// The CA that issued its certificate; `None` for a root.
    pub parent: Option<String>,
    /// Its certificate, DER.
    #[serde(with = "der_b64")]
    pub certificate: Vec<u8>,
    /// The certificates above it, nearest first, up to and including the root (DER); empty
    /// for a root.
    #[serde(with = "der_b64_list")]
    pub chain: Vec<Vec<u8>>,
    /// What it may issue.
    pub settings: CaSettings,
    /// The number of the newest CRL (RFC 5280 §5.2.3); 0 before the first.
    pub crl_number: u64,
    /// The newest CRL, DER.
    #[serde(with = "der_b64_opt")]
    pub crl: Option<Vec<u8>>,
    /// The newest CRL's `nextUpdate`, seconds since the Unix epoch.
    pub crl_next_update_unix_s: u64,
    /// Every certificate it revoked, oldest first.
    pub revoked: Vec<Revocation>,
    /// When it was created, ms since the Unix epoch.
    pub created_unix_ms: u64,
}

/// What a CA may issue (checked by the API at each issuance).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaSettings {
    /// DNS names leaf certificates may carry: `example.com` (that name), `*.example.com` (one
    /// label below it, or that wildcard), `.example.com` (any name below it); empty: any.
    pub allowed_dns: Vec<String>,
    /// Whether IP-address names may be issued.
    pub allow_ip: bool,
    /// Longest validity of a certificate it issues, in days (each profile has its own limit
    /// too; the smaller one applies).
    pub max_validity_days: u32,
    /// How long a CRL is valid (its `nextUpdate - thisUpdate`), in seconds; a new one is
    /// signed once half of that has passed.
    pub crl_period_s: u64,
    /// Its certificate's path length constraint (RFC 5280 §4.2.1.9); `None`: unlimited.
    pub path_len: Option<u8>,
    /// Its certificate's permitted DNS subtrees (RFC 5280 §4.2.1.10); empty: none set.
    pub permitted_dns: Vec<String>,
    /// URLs of its CRL, written into the CRL distribution points (RFC 5280 §4.2.1.13) of the
    /// certificates it issues; empty: none. (Absent in records written before it existed.)
    #[serde(default)]
    pub crl_urls: Vec<String>,
    /// URLs of its OCSP responder, written into the authority information access (RFC 5280
    /// §4.2.2.1) of the certificates it issues; empty: none.
    #[serde(default)]
    pub ocsp_urls: Vec<String>,
}

/// A revoked certificate as a CRL lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    /// The serial number, lowercase hex of its big-endian bytes.
    pub serial: String,
    /// When it was revoked, seconds since the Unix epoch.
    pub revoked_unix_s: u64,
    /// The RFC 5280 §5.3.1 reason code (0 unspecified, 1 keyCompromise, 3 affiliationChanged,
    /// 4 superseded, 5 cessationOfOperation, ...).
    pub reason: u8,
    /// The certificate's `notAfter`: a CRL lists it until then.
    pub not_after_unix_s: u64,
}

/// One issued certificate in the register.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertRecord {
    /// The issuing CA.
    pub ca: String,
    /// Lowercase hex of the serial's big-endian bytes.
    pub serial: String,
    /// The profile it was issued under (`tls-server`, `tls-client`, `code-signing`,
    /// `intermediate`).
    pub profile: String,
    /// Its subject, as RFC 4514 text.
    pub subject: String,
    /// Its DNS and IP subject alternative names.
    pub dns: Vec<String>,
    /// IP addresses, as text.
    pub ips: Vec<String>,
    /// `notBefore` and `notAfter`, seconds since the Unix epoch.
    pub not_before_unix_s: u64,
    /// See `not_before_unix_s`.
    pub not_after_unix_s: u64,
    /// The certificate, DER.
    #[serde(with = "der_b64")]
    pub certificate: Vec<u8>,
    /// Who asked for it.
    pub issued_by: String,
    /// When, ms since the Unix epoch.
    pub issued_unix_ms: u64,
    /// Set once it is revoked.
    pub revocation: Option<Revocation>,
}

impl CertRecord {
    /// The record id: `CA:SERIAL`.
    fn id(&self) -> String {
        cert_id(&self.ca, &self.serial)
    }
}

fn cert_id(ca: &str, serial: &str) -> String {
    format!("{ca}:{serial}")
}

/// Checks a CA name: `[a-z0-9][a-z0-9_.-]*`, 1 to [`CA_NAME_MAX`] bytes.
///
/// # Errors
/// [`Error::InvalidInput`].
pub fn check_ca_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= CA_NAME_MAX
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.' || b == b'-'
        });
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "CA name {:?} must be 1 to {CA_NAME_MAX} of a-z, 0-9, '_', '.', '-', starting with a letter or digit",
            printable(name)
        )))
    }
}

/// Checks a serial's text: lowercase hex, 2 to 40 digits (RFC 5280 §4.1.2.2: at most 20
/// octets).
fn check_serial(serial: &str) -> Result<()> {
    let ok = (2..=40).contains(&serial.len())
        && serial.len().is_multiple_of(2)
        && serial
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "serial {:?} must be 2 to 40 lowercase hex digits",
            printable(serial)
        )))
    }
}

impl Hsm {
    /// Reads one record of `kind` after catching up, checked against this node's manifest
    /// ([`read_checked`](Self::read_checked)).
    fn read_register<T: for<'de> Deserialize<'de>>(
        &self,
        kind: RecordKind,
        id: &str,
    ) -> Result<Option<(T, u64)>> {
        self.catch_up_if_moved();
        let known = lock(&self.writer)
            .records
            .get(&manifest_key(kind, id))
            .copied();
        self.read_checked(known, kind, id)
    }

    /// Reads one record of `kind` whose manifest version is `known`: it must be there when the
    /// manifest lists it, at least that version (a newer one is another node's commit since
    /// this node last caught up), and on a store with one writer listed.
    fn read_checked<T: for<'de> Deserialize<'de>>(
        &self,
        known: Option<u64>,
        kind: RecordKind,
        id: &str,
    ) -> Result<Option<(T, u64)>> {
        let Some(rec) = self.store.get(kind.as_str(), id)? else {
            return match known {
                Some(_) => Err(Error::StoreInconsistent {
                    detail: format!("record {} is missing", printable(&manifest_key(kind, id))),
                }),
                None => Ok(None),
            };
        };
        match known {
            Some(v) if rec.version < v => return Err(went_back_record(kind, id, v, rec.version)),
            None if !self.store.is_shared() => {
                return Err(Error::StoreInconsistent {
                    detail: format!(
                        "record {} is not in the manifest",
                        printable(&manifest_key(kind, id))
                    ),
                })
            }
            _ => {}
        }
        let plain = self
            .data_key
            .load()
            .open(kind, id, rec.version, &rec.blob)?;
        let value = serde_json::from_slice(&plain).map_err(|_| tampered(kind, id))?;
        Ok(Some((value, rec.version)))
    }

    /// [`read_checked`](Self::read_checked) under the write lock (`manifest` is current).
    fn read_locked<T: for<'de> Deserialize<'de>>(
        &self,
        manifest: &Manifest,
        kind: RecordKind,
        id: &str,
    ) -> Result<Option<(T, u64)>> {
        let known = manifest.records.get(&manifest_key(kind, id)).copied();
        self.read_checked(known, kind, id)
    }

    /// The CA named `name`. Its certificate and CRL are public; the caller decides who sees
    /// the rest.
    ///
    /// # Errors
    /// [`Error::CaNotFound`]; [`Error::Store`], [`Error::RecordTampered`],
    /// [`Error::StoreInconsistent`].
    pub fn ca(&self, name: &str) -> Result<CaRecord> {
        check_ca_name(name)?;
        self.read_register::<CaRecord>(RecordKind::Ca, name)?
            .map(|(ca, _)| ca)
            .ok_or_else(|| Error::CaNotFound {
                name: printable(name),
            })
    }

    /// Every CA, by name.
    ///
    /// # Errors
    /// As [`Hsm::ca`].
    pub fn cas(&self) -> Result<Vec<CaRecord>> {
        self.catch_up_if_moved();
        let prefix = manifest_key(RecordKind::Ca, "");
        let names: Vec<String> = lock(&self.writer)
            .records
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix).map(str::to_owned))
            .collect();
        names.iter().map(|n| self.ca(n)).collect()
    }

    /// The certificate `serial` (lowercase hex) that CA `ca` issued.
    ///
    /// # Errors
    /// [`Error::CertificateNotFound`]; as [`Hsm::ca`].
    pub fn issued_certificate(&self, ca: &str, serial: &str) -> Result<CertRecord> {
        check_ca_name(ca)?;
        check_serial(serial)?;
        let record = self.ca(ca)?;
        let id = cert_id(ca, serial);
        let rec = self
            .store
            .get(RecordKind::Cert.as_str(), &id)?
            .ok_or_else(|| Error::CertificateNotFound {
                serial: serial.to_owned(),
            })?;
        let cert = self.open_cert(&rec)?;
        Ok(with_status(cert, &record))
    }

    /// A `cert` record, opened (its kind, id and version are bound into its encryption).
    fn open_cert(&self, rec: &Record) -> Result<CertRecord> {
        let plain = self
            .data_key
            .load()
            .open(RecordKind::Cert, &rec.id, rec.version, &rec.blob)?;
        let cert: CertRecord =
            serde_json::from_slice(&plain).map_err(|_| tampered(RecordKind::Cert, &rec.id))?;
        if cert.id() != rec.id {
            return Err(tampered(RecordKind::Cert, &rec.id));
        }
        Ok(cert)
    }

    /// Every certificate CA `ca` issued, oldest first. Whoever may sign with the CA's key.
    ///
    /// # Errors
    /// As [`Hsm::ca`]; [`Error::PermissionDenied`] and the key errors of [`Hsm::signer`].
    pub fn issued_certificates(&self, session: &Session, ca: &str) -> Result<Vec<CertRecord>> {
        let record = self.ca(ca)?;
        self.may_use_ca(session, &record)?;
        let prefix = cert_id(ca, "");
        let mut out = Vec::new();
        for rec in self.store.list(RecordKind::Cert.as_str())? {
            if rec.id.starts_with(&prefix) {
                out.push(with_status(self.open_cert(&rec)?, &record));
            }
        }
        out.sort_by_key(|c: &CertRecord| c.issued_unix_ms);
        Ok(out)
    }

    /// Whether `session` may act on CA `ca`: sign with its key. Refused as
    /// [`Error::PermissionDenied`] (never as a missing key, which would name a key the caller
    /// may not see).
    ///
    /// # Errors
    /// [`Error::PermissionDenied`]; [`Error::SessionInvalid`].
    pub fn may_use_ca(&self, session: &Session, ca: &CaRecord) -> Result<()> {
        match self.signer(session, ca.key) {
            Ok(_) => Ok(()),
            Err(Error::KeyNotFound { .. } | Error::PermissionDenied { .. }) => {
                Err(Error::PermissionDenied {
                    reason: "only users allowed to sign with a CA's key (its owner, and those it is shared with) may use the CA",
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Records a certificate request of CA `ca` refused before anything was issued (audit
    /// `ca.issue`, outcome `denied` or `failed`, target `CA:refused`), so refusals leave a
    /// trace as issued certificates do.
    ///
    /// # Errors
    /// [`Error::Store`] when the entry cannot be written.
    pub fn record_refused_issue(&self, session: &Session, ca: &str, refusal: &Error) -> Result<()> {
        let outcome = match refusal {
            Error::PermissionDenied { .. }
            | Error::AttributeViolation { .. }
            | Error::CertificateRequestRefused { .. } => Outcome::Denied,
            _ => Outcome::Failed,
        };
        self.audit_append(
            session.user(),
            AuditEvent::CaIssue,
            Some(&format!("{}:refused", printable(ca))),
            outcome,
        )
    }

    /// A session of CA `name`'s owner for the node's own use of the CA's key: signing CRLs on
    /// schedule and OCSP responses, which no caller asks for with a session of their own. Its
    /// use is audited under the owner's name (`ca.crl`); it is never handed to a caller.
    ///
    /// # Errors
    /// [`Error::CaNotFound`]; [`Error::UserNotFound`] when the owner was deleted.
    pub fn ca_service_session(&self, name: &str) -> Result<Session> {
        let ca = self.ca(name)?;
        let users = lock(&self.users);
        match users.get(&ca.owner) {
            Some((u, _)) => Ok(Session::new(
                self.next_session.fetch_add(1, Ordering::Relaxed),
                &ca.owner,
                u.role,
                None,
            )),
            None => Err(Error::UserNotFound { user: ca.owner }),
        }
    }

    /// Registers a new CA. `record.key` must be the caller's own private key, not extractable,
    /// a token key; in the same commit it is bound to the CA ([`KeyInfo::issuing_ca`]: only
    /// the CA's signatures from now on) and made neither destroyable nor modifiable.
    ///
    /// # Errors
    /// [`Error::CaExists`]; [`Error::InvalidInput`] for a bad name or an extractable key;
    /// [`Error::PermissionDenied`] and the key errors of [`Hsm::signer`]; [`Error::Store`].
    pub fn create_ca(&self, session: &Session, record: &CaRecord) -> Result<()> {
        check_ca_name(&record.name)?;
        self.audited(
            session.user(),
            AuditEvent::CaCreate,
            Some(record.name.clone()),
            |audit| {
                self.signer(session, record.key)?;
                let info = self.key_info(session, record.key)?;
                if info.attributes.extractable {
                    return Err(Error::invalid(format!(
                        "key {} is extractable; a CA key must not be (generate it with extractable=false)",
                        record.key
                    )));
                }
                let mut manifest = self.begin_write()?;
                if manifest
                    .records
                    .contains_key(&manifest_key(RecordKind::Ca, &record.name))
                {
                    return Err(Error::CaExists {
                        name: record.name.clone(),
                    });
                }
                let write = seal_json(
                    &self.data_key.load(),
                    RecordKind::Ca,
                    &record.name,
                    1,
                    record,
                )?;
                // In the same commit, the key becomes the CA's: bound to it (raw signing is
                // refused), neither destroyable nor modifiable.
                let (obj, old) = self.owned(session, record.key)?;
                if !old.info.attributes.token {
                    return Err(Error::invalid("a CA's key must be a token (persistent) key"));
                }
                let mut info = old.info.clone();
                info.issuing_ca = Some(record.name.clone());
                info.attributes.destroyable = false;
                info.attributes.modifiable = false;
                let key_version = old.record_version + 1;
                let key_write = self.key_record(&info, &old.versions, key_version)?;
                let key_id = info.handle.to_string();
                self.commit(
                    &mut manifest,
                    vec![Write::Insert(write), Write::Update(key_write)],
                    &[
                        (RecordKind::Ca, &record.name, Some(1)),
                        (RecordKind::Key, &key_id, Some(key_version)),
                    ],
                    Some(audit),
                )?;
                obj.state.store(Arc::new(KeyState {
                    info,
                    record_version: key_version,
                    versions: old.versions.clone(),
                }));
                Ok(())
            },
        )
    }

    /// Records a certificate CA `cert.ca` issued (after the API built and signed it).
    ///
    /// # Errors
    /// As [`Hsm::create_ca`]; [`Error::InvalidInput`] for a serial already used.
    pub fn record_issued(&self, session: &Session, cert: &CertRecord) -> Result<()> {
        check_serial(&cert.serial)?;
        let id = cert.id();
        self.audited(
            session.user(),
            AuditEvent::CaIssue,
            Some(id.clone()),
            |audit| {
                let ca = self.ca(&cert.ca)?;
                self.may_use_ca(session, &ca)?;
                let mut manifest = self.begin_write()?;
                if self.store.get(RecordKind::Cert.as_str(), &id)?.is_some() {
                    return Err(Error::invalid(format!(
                        "CA {} already issued serial {}",
                        cert.ca, cert.serial
                    )));
                }
                let record = CertRecord {
                    revocation: None,
                    ..cert.clone()
                };
                let write = seal_json(&self.data_key.load(), RecordKind::Cert, &id, 1, &record)?;
                // Not in the manifest (see the module documentation): no manifest change.
                self.commit(&mut manifest, vec![Write::Insert(write)], &[], Some(audit))
            },
        )
    }

    /// Revokes certificate `serial` of CA `ca` with RFC 5280 reason code `reason`: the CA's
    /// list of revocations (its record, in the manifest) changes, audited. The next CRL lists
    /// it; a CRL is not signed here.
    ///
    /// # Errors
    /// [`Error::CertificateNotFound`]; [`Error::InvalidInput`] when it is already revoked or
    /// the reason is not one of RFC 5280's; as [`Hsm::create_ca`].
    pub fn revoke_certificate(
        &self,
        session: &Session,
        ca: &str,
        serial: &str,
        reason: u8,
    ) -> Result<Revocation> {
        check_ca_name(ca)?;
        check_serial(serial)?;
        let id = cert_id(ca, serial);
        // 8 (removeFromCRL) belongs to delta CRLs only (RFC 5280 §5.3.1): in a full CRL it
        // would list the certificate without revoking it.
        if !matches!(reason, 0..=6 | 9..=10) {
            return Err(Error::invalid(format!(
                "revocation reason {reason} is not one a full CRL takes (RFC 5280 §5.3.1: 0 to 6, 9, 10)"
            )));
        }
        self.audited(
            session.user(),
            AuditEvent::CaRevoke,
            Some(id.clone()),
            |audit| {
                let mut manifest = self.begin_write()?;
                let (mut record, ca_version) = self
                    .read_locked::<CaRecord>(&manifest, RecordKind::Ca, ca)?
                    .ok_or_else(|| Error::CaNotFound { name: ca.into() })?;
                self.may_use_ca(session, &record)?;
                let cert = self
                    .store
                    .get(RecordKind::Cert.as_str(), &id)?
                    .ok_or_else(|| Error::CertificateNotFound {
                        serial: serial.into(),
                    })
                    .and_then(|rec| self.open_cert(&rec))?;
                if record.revoked.iter().any(|r| r.serial == serial) {
                    return Err(Error::invalid(format!(
                        "certificate {serial} of CA {ca} is already revoked"
                    )));
                }
                let revocation = Revocation {
                    serial: serial.to_owned(),
                    revoked_unix_s: crate::audit::now_unix_ms() / 1000,
                    reason,
                    not_after_unix_s: cert.not_after_unix_s,
                };
                // The revocation lives in the CA record (in the manifest): see the module
                // documentation. The certificate's record does not change.
                record.revoked.push(revocation.clone());
                let write = seal_json(
                    &self.data_key.load(),
                    RecordKind::Ca,
                    ca,
                    ca_version + 1,
                    &record,
                )?;
                self.commit(
                    &mut manifest,
                    vec![Write::Update(write)],
                    &[(RecordKind::Ca, ca, Some(ca_version + 1))],
                    Some(audit),
                )?;
                Ok(revocation)
            },
        )
    }

    /// Stores CA `ca`'s new CRL (signed by the API with the CA's key) as number
    /// `crl_number`, which must be the next one. `session` may be a service session (the
    /// node's scheduled CRLs) or any user allowed to sign with the CA's key.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when `crl_number` is not the next number (another node
    /// published first: read the CA again); as [`Hsm::create_ca`].
    pub fn publish_crl(
        &self,
        session: &Session,
        ca: &str,
        crl_number: u64,
        crl: Vec<u8>,
        next_update_unix_s: u64,
    ) -> Result<()> {
        check_ca_name(ca)?;
        self.audited(
            session.user(),
            AuditEvent::CaCrl,
            Some(format!("{ca}:crl-{crl_number}")),
            |audit| {
                let mut manifest = self.begin_write()?;
                let (mut record, version) = self
                    .read_locked::<CaRecord>(&manifest, RecordKind::Ca, ca)?
                    .ok_or_else(|| Error::CaNotFound { name: ca.into() })?;
                self.may_use_ca(session, &record)?;
                if crl_number != record.crl_number + 1 {
                    return Err(Error::invalid(format!(
                        "CRL number {crl_number} is not the next of CA {ca} ({})",
                        record.crl_number + 1
                    )));
                }
                record.crl_number = crl_number;
                record.crl = Some(crl);
                record.crl_next_update_unix_s = next_update_unix_s;
                let write = seal_json(
                    &self.data_key.load(),
                    RecordKind::Ca,
                    ca,
                    version + 1,
                    &record,
                )?;
                self.commit(
                    &mut manifest,
                    vec![Write::Update(write)],
                    &[(RecordKind::Ca, ca, Some(version + 1))],
                    Some(audit),
                )
            },
        )
    }
}

/// `cert` with its revocation as CA `ca`'s record has it (the one that counts).
fn with_status(mut cert: CertRecord, ca: &CaRecord) -> CertRecord {
    cert.revocation = ca.revoked.iter().find(|r| r.serial == cert.serial).cloned();
    cert
}

fn went_back_record(kind: RecordKind, id: &str, known: u64, found: u64) -> Error {
    Error::StoreRolledBack {
        detail: format!(
            "record {} went back from version {known} to {found}",
            printable(&manifest_key(kind, id))
        ),
    }
}

/// DER bytes as standard base64 text in records.
mod der_b64 {
    use super::*;

    pub(super) fn serialize<S: serde::Serializer>(
        v: &[u8],
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(serde::de::Error::custom)
    }
}

mod der_b64_opt {
    use super::*;

    pub(super) fn serialize<S: serde::Serializer>(
        v: &Option<Vec<u8>>,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        v.as_ref()
            .map(|b| base64::engine::general_purpose::STANDARD.encode(b))
            .serialize(s)
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| base64::engine::general_purpose::STANDARD.decode(s))
            .transpose()
            .map_err(serde::de::Error::custom)
    }
}

mod der_b64_list {
    use super::*;

    pub(super) fn serialize<S: serde::Serializer>(
        v: &[Vec<u8>],
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        v.iter()
            .map(|b| base64::engine::general_purpose::STANDARD.encode(b))
            .collect::<Vec<_>>()
            .serialize(s)
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<Vec<Vec<u8>>, D::Error> {
        Vec::<String>::deserialize(d)?
            .into_iter()
            .map(|s| base64::engine::general_purpose::STANDARD.decode(s))
            .collect::<std::result::Result<_, _>>()
            .map_err(serde::de::Error::custom)
    }
}

/// Refuses to let a key go while an issuing CA signs with it: its certificates, CRLs and OCSP
/// responses would fail (as Vault refuses to delete a key an issuer uses).
pub(super) fn refuse_ca_key(info: &KeyInfo) -> Result<()> {
    match &info.issuing_ca {
        Some(_) => Err(Error::PermissionDenied {
            reason: "the key of an issuing CA is kept as long as the CA: it signs the CA's certificates, CRLs and OCSP responses",
        }),
        None => Ok(()),
    }
}
