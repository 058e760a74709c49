//! CRLs (X.509 v2, RFC 5280 §5): full, with the CRL number and authority key identifier
//! extensions and `nextUpdate`, signed by the CA's key in the HSM. The newest one is kept in
//! the CA's record; [`current`] signs a new one when half of its period has passed (so
//! relying parties that fetch at `nextUpdate` always find a fresh one), and [`publish`] on
//! demand or after a revocation.

use keyward_hsm::{CaRecord, Error, Hsm, Session};
use rcgen::{
    CertificateRevocationListParams, KeyIdMethod, RevocationReason, RevokedCertParams, SerialNumber,
};
use time::OffsetDateTime;

use super::{issuer, now, unix_s};

fn reason(code: u8) -> RevocationReason {
    match code {
        1 => RevocationReason::KeyCompromise,
        2 => RevocationReason::CaCompromise,
        3 => RevocationReason::AffiliationChanged,
        4 => RevocationReason::Superseded,
        5 => RevocationReason::CessationOfOperation,
        6 => RevocationReason::CertificateHold,
        8 => RevocationReason::RemoveFromCrl,
        9 => RevocationReason::PrivilegeWithdrawn,
        10 => RevocationReason::AaCompromise,
        _ => RevocationReason::Unspecified,
    }
}

fn time_of(unix_s: u64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(i64::try_from(unix_s).unwrap_or(i64::MAX))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Signs CA `ca_name`'s next CRL (every revoked certificate not yet expired) and stores it
/// (audited `ca.crl`). When another node published the same number first, returns theirs.
/// `session` must be allowed to sign with the CA's key.
///
/// # Errors
/// [`Error::CaNotFound`]; the key errors of [`Hsm`]; [`Error::Store`].
pub fn publish(hsm: &Hsm, session: &Session, ca_name: &str) -> Result<CaRecord, Error> {
    let ca = hsm.ca(ca_name)?;
    hsm.may_use_ca(session, &ca)?;
    let issuer = issuer(hsm, session, &ca)?;
    let now = now();
    let period = ca.settings.crl_period_s.max(60);
    let next_update = now + time::Duration::seconds(i64::try_from(period).unwrap_or(86400));
    let number = ca.crl_number + 1;
    let params = CertificateRevocationListParams {
        this_update: now,
        next_update,
        crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
        issuing_distribution_point: None,
        revoked_certs: ca
            .revoked
            .iter()
            .filter(|r| r.not_after_unix_s >= unix_s(now))
            .map(|r| {
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(
                        &hex::decode(&r.serial).map_err(|_| Error::Internal("stored serial"))?,
                    ),
                    revocation_time: time_of(r.revoked_unix_s),
                    reason_code: Some(reason(r.reason)),
                    invalidity_date: None,
                })
            })
            .collect::<Result<_, Error>>()?,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let crl = params
        .signed_by(&issuer)
        .map_err(|_| Error::Internal("signing the CRL in the HSM failed"))?;
    match hsm.publish_crl(
        session,
        ca_name,
        number,
        crl.der().to_vec(),
        unix_s(next_update),
    ) {
        Ok(()) => hsm.ca(ca_name),
        Err(Error::InvalidInput { .. }) if hsm.ca(ca_name)?.crl_number >= number => hsm.ca(ca_name),
        Err(e) => Err(e),
    }
}

/// CA `ca_name`'s newest CRL (DER), signing a new one first (on the CA owner's behalf) when
/// there is none or half of its period has passed.
///
/// # Errors
/// As [`publish`].
pub fn current(hsm: &Hsm, ca_name: &str) -> Result<Vec<u8>, Error> {
    let ca = hsm.ca(ca_name)?;
    let half = ca.settings.crl_period_s.max(60) / 2;
    let fresh = ca
        .crl
        .as_ref()
        .filter(|_| unix_s(now()) + half < ca.crl_next_update_unix_s);
    if let Some(crl) = fresh {
        return Ok(crl.clone());
    }
    let session = hsm.ca_service_session(ca_name)?;
    publish(hsm, &session, ca_name)?
        .crl
        .ok_or(Error::Internal("a published CRL is missing"))
}
