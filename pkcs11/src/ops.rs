//! Sign, verify, encrypt, decrypt and digest operations: what each `C_*Init` checks, and
//! the one call to the HSM that finishes each. The FFI layer (`crate::ffi`) handles the
//! buffers (length queries, `CKR_BUFFER_TOO_SMALL`).

use cryptoki_sys::*;
use keyward_client::{DecryptItem, EncryptItem, SignInput, SignItem, VerifyItem};
use zeroize::Zeroizing;

use crate::error::{rv, Doing, Rv};
use crate::mechanisms::{crypt_plan, digest_alg, ecdsa_digest_len, resolve, sign_plan, Feed, Mech};
use crate::module::{Module, Token};
use crate::objects::{class_of, signature_len, type_name};
use crate::session::{CryptOp, Data, DigestOp, OutLen, SignOp};

/// `C_SignInit` / `C_VerifyInit`: the key must fit the mechanism and allow the use.
pub(crate) fn sign_init(
    m: &Module,
    token: &Token,
    mech: &Mech,
    handle: u64,
    verify: bool,
) -> Rv<SignOp> {
    let c = m.key(token, handle, Doing::KeyOp)?;
    let plan = sign_plan(
        mech,
        type_name(&c.key),
        ecdsa_digest_len(c.key.spec.as_str()),
    )?;
    if !verify && class_of(&c.key) == CKO_PUBLIC_KEY {
        return Err(CKR_KEY_TYPE_INCONSISTENT);
    }
    let allowed = if verify {
        c.key.attributes.verify
    } else {
        c.key.attributes.sign
    };
    if !allowed {
        return Err(CKR_KEY_FUNCTION_NOT_PERMITTED);
    }
    let data = match plan.feed {
        Feed::HashHere(h) => Data::Hashing(aws_lc_rs::digest::Context::new(
            digest_alg(h).ok_or(CKR_GENERAL_ERROR)?,
        )),
        Feed::Digest | Feed::Message => Data::Kept(Zeroizing::new(Vec::new())),
    };
    let hmac_len = match mech.kind {
        CKM_SHA256_HMAC => Some(32),
        CKM_SHA384_HMAC => Some(48),
        CKM_SHA512_HMAC => Some(64),
        _ => None,
    };
    Ok(SignOp {
        handle,
        version: c.key.latest_version.max(1),
        plan,
        data: Some(data),
        len: signature_len(&c.key, hmac_len),
        result: None,
        multi: false,
    })
}

/// The request for the data gathered so far (which it consumes).
fn sign_item(op: &mut SignOp) -> Rv<SignItem> {
    let data = op
        .data
        .take()
        .ok_or(CKR_OPERATION_NOT_INITIALIZED)?
        .finish();
    let (api, bytes) = resolve(op.plan.api, &data)?;
    let input = match op.plan.feed {
        Feed::Message => SignInput::Message(bytes),
        Feed::Digest | Feed::HashHere(_) => SignInput::Digest(bytes),
    };
    Ok(SignItem {
        key: op.handle,
        mechanism: api.to_owned(),
        input,
        encoding: op.plan.raw_ecdsa.then(|| "raw".to_owned()),
        key_version: None,
    })
}

/// Signs the gathered data (once: later calls get the same signature).
pub(crate) fn sign(m: &Module, token: &Token, op: &mut SignOp) -> Rv<Vec<u8>> {
    if let Some(sig) = &op.result {
        return Ok(sig.clone());
    }
    let item = sign_item(op)?;
    let sig = if op.plan.hmac {
        m.block_on(token.client.hmac(&item))
    } else {
        m.block_on(token.client.sign(&item))
    }
    .map_err(|e| rv(&e, Doing::KeyOp))?;
    op.result = Some(sig.clone());
    Ok(sig)
}

/// Verifies `signature` over the gathered data.
pub(crate) fn verify(m: &Module, token: &Token, op: &mut SignOp, signature: &[u8]) -> Rv {
    // RSA signatures are exactly the modulus's length, ECDSA's r‖s twice the field's, MACs
    // the hash's: anything else cannot verify.
    if signature.len() != op.len {
        return Err(CKR_SIGNATURE_LEN_RANGE);
    }
    let s = sign_item(op)?;
    let item = VerifyItem {
        key: s.key,
        mechanism: s.mechanism,
        input: s.input,
        signature: signature.to_vec(),
        encoding: s.encoding,
        key_version: Some(op.version),
    };
    match m.block_on(token.client.verify(&item)) {
        Ok(true) => Ok(()),
        Ok(false) => Err(CKR_SIGNATURE_INVALID),
        Err(e) => match rv(&e, Doing::KeyOp) {
            CKR_DATA_INVALID => Err(CKR_SIGNATURE_INVALID),
            other => Err(other),
        },
    }
}

/// `C_EncryptInit` / `C_DecryptInit`.
pub(crate) fn crypt_init(
    m: &Module,
    token: &Token,
    mech: Mech,
    handle: u64,
    encrypt: bool,
) -> Rv<CryptOp> {
    let c = m.key(token, handle, Doing::KeyOp)?;
    let plan = crypt_plan(mech, type_name(&c.key))?;
    let class = class_of(&c.key);
    if !encrypt && class == CKO_PUBLIC_KEY {
        return Err(CKR_KEY_TYPE_INCONSISTENT);
    }
    let allowed = if encrypt {
        c.key.attributes.encrypt
    } else {
        c.key.attributes.decrypt
    };
    if !allowed {
        return Err(CKR_KEY_FUNCTION_NOT_PERMITTED);
    }
    let out_len = match (plan.api, encrypt) {
        ("aes-gcm", true) => OutLen::Plus(16),
        ("aes-gcm", false) => OutLen::Minus(16),
        ("aes-cbc-pad", true) => OutLen::Padded,
        ("aes-cbc-pad", false) => OutLen::AtMostInput,
        _ => OutLen::Fixed(signature_len(&c.key, None)),
    };
    Ok(CryptOp {
        handle,
        version: c.key.latest_version.max(1),
        plan,
        data: Zeroizing::new(Vec::new()),
        out_len,
        result: None,
        multi: false,
    })
}

/// Encrypts or decrypts the gathered data (once: later calls get the same result).
pub(crate) fn crypt(
    m: &Module,
    token: &Token,
    op: &mut CryptOp,
    encrypt: bool,
) -> Rv<Zeroizing<Vec<u8>>> {
    if let Some(r) = &op.result {
        return Ok(r.clone());
    }
    let aad = (!op.plan.aad.is_empty()).then(|| op.plan.aad.clone());
    let data = std::mem::take(&mut *op.data);
    let out = if encrypt {
        let item = EncryptItem {
            key: op.handle,
            mechanism: op.plan.api.to_owned(),
            plaintext: data,
            aad,
            key_version: None,
            iv: op.plan.iv.clone(),
        };
        let mut bytes = Zeroizing::new(
            m.block_on(token.client.encrypt(&item))
                .map_err(|e| rv(&e, Doing::KeyOp))?,
        );
        if let Some(iv) = &op.plan.iv {
            // The API's ciphertext starts with the IV: PKCS#11's does not.
            if !bytes.starts_with(iv) {
                return Err(CKR_DEVICE_ERROR);
            }
            bytes = Zeroizing::new(bytes.split_off(iv.len()));
        }
        bytes
    } else {
        let ciphertext = match &op.plan.iv {
            Some(iv) => [iv.as_slice(), &data].concat(),
            None => data,
        };
        let item = DecryptItem {
            key: op.handle,
            mechanism: op.plan.api.to_owned(),
            ciphertext,
            aad,
            key_version: Some(op.version),
        };
        Zeroizing::new(
            m.block_on(token.client.decrypt(&item))
                .map_err(|e| rv(&e, Doing::Decrypt))?,
        )
    };
    op.result = Some(out.clone());
    Ok(out)
}

/// `C_DigestInit`.
pub(crate) fn digest_init(mech: &Mech) -> Rv<DigestOp> {
    let alg = digest_alg(mech.kind).ok_or(CKR_MECHANISM_INVALID)?;
    Ok(DigestOp {
        ctx: aws_lc_rs::digest::Context::new(alg),
        multi: false,
    })
}
