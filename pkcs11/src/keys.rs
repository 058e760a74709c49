//! Object management: find, generate, unwrap, wrap, change and destroy keys. The HSM decides
//! every policy question (labels, attributes, who may see what); the module only maps.

use cryptoki_sys::*;
use keyward_client::{CallOptions, KeyFilter};

use crate::error::{rv, Doing, Rv};
use crate::mechanisms::{wrap_mech, Mech, Param};
use crate::module::{Module, Token};
use crate::objects::{
    class_of, matches, needs_spki, pair_spec, secret_spec, type_name, type_name_of_ckk, Template,
    BOOLS,
};

/// A label for a key whose template has none (the HSM requires one): `p11-` and 8 random
/// bytes in hex.
fn fresh_label() -> String {
    let mut b = [0u8; 8];
    let _ = aws_lc_rs::rand::fill(&mut b);
    format!("p11-{}", hex::encode(b))
}

/// The usage a new secret key gets when its template names none: AES encrypts and decrypts,
/// a generic secret MACs.
fn secret_usage(kind: &str) -> &'static [&'static str] {
    if kind == "aes" {
        &["encrypt", "decrypt"]
    } else {
        &["sign", "verify"]
    }
}

/// `C_FindObjectsInit` + the search: the handles of the user's keys matching every attribute
/// of `wanted`. Not logged in: nothing (every Keyward object needs a login).
pub(crate) fn find(
    m: &Module,
    token: &Token,
    wanted: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
) -> Rv<Vec<u64>> {
    if token.user().is_none() {
        return Ok(Vec::new());
    }
    let mut filter = KeyFilter {
        limit: Some(1000),
        ..KeyFilter::default()
    };
    for (ty, v) in wanted {
        let ulong = || <[u8; 8]>::try_from(v.as_slice()).map(CK_ULONG::from_ne_bytes);
        match *ty {
            CKA_CLASS => match ulong() {
                Ok(CKO_SECRET_KEY) => filter.class = Some("secret".into()),
                Ok(CKO_PRIVATE_KEY) => filter.class = Some("private".into()),
                Ok(CKO_PUBLIC_KEY) => filter.class = Some("public".into()),
                // Certificates, data objects, …: the token holds none.
                _ => return Ok(Vec::new()),
            },
            CKA_KEY_TYPE => match ulong().ok().and_then(type_name_of_ckk) {
                Some(t) => filter.key_type = Some(t.into()),
                None => return Ok(Vec::new()),
            },
            CKA_LABEL => match std::str::from_utf8(v) {
                Ok(l) if !l.is_empty() => filter.label = Some(l.to_owned()),
                _ => return Ok(Vec::new()),
            },
            _ => {}
        }
    }
    let spki = wanted.iter().any(|(ty, _)| needs_spki(*ty));
    let mut found = Vec::new();
    loop {
        let page = m
            .block_on(token.client.list_keys(&filter))
            .map_err(|e| rv(&e, Doing::Object))?;
        for key in page.keys {
            let handle = key.handle;
            let mut c = token.remember(key);
            if spki && class_of(&c.key) != CKO_SECRET_KEY {
                c = m.key_with_spki(token, handle)?;
            }
            if matches(&c, wanted) {
                found.push(handle);
            }
        }
        match page.next {
            Some(next) => filter.after = Some(next),
            None => return Ok(found),
        }
    }
}

/// `C_GenerateKey`: AES (`CKA_VALUE_LEN` 16, 24, 32) or a generic secret.
pub(crate) fn generate_secret(m: &Module, token: &Token, mech: &Mech, t: &Template) -> Rv<u64> {
    let (kind, ckk) = match mech.kind {
        CKM_AES_KEY_GEN => ("aes", CKK_AES),
        CKM_GENERIC_SECRET_KEY_GEN => ("generic-secret", CKK_GENERIC_SECRET),
        _ => return Err(CKR_MECHANISM_INVALID),
    };
    if t.key_type.is_some_and(|k| k != ckk) {
        return Err(CKR_TEMPLATE_INCONSISTENT);
    }
    let spec = secret_spec(kind, t.value_len)?;
    let template = t.key_template(CKO_SECRET_KEY, &fresh_label(), secret_usage(kind))?;
    let key = m
        .block_on(
            token
                .client
                .generate_symmetric(&spec, &template, CallOptions::default()),
        )
        .map_err(|e| rv(&e, Doing::Create))?;
    Ok(token.remember(key).key.handle)
}

/// `C_GenerateKeyPair`: `(public, private)` handles.
pub(crate) fn generate_pair(
    m: &Module,
    token: &Token,
    mech: &Mech,
    public: &Template,
    private: &Template,
) -> Rv<(u64, u64)> {
    // Some applications put the curve in the private template.
    let spec = match (public.ec_params.is_none(), private.ec_params.is_some()) {
        (true, true) => pair_spec(
            mech.kind,
            &Template {
                ec_params: private.ec_params.clone(),
                ..Template::default()
            },
        )?,
        _ => pair_spec(mech.kind, public)?,
    };
    let label = [&public.label, &private.label]
        .into_iter()
        .flatten()
        .find(|l| !l.is_empty())
        .cloned()
        .unwrap_or_else(fresh_label);
    let pub_t = public.key_template(CKO_PUBLIC_KEY, &label, &["verify"])?;
    let priv_t = private.key_template(CKO_PRIVATE_KEY, &label, &["sign"])?;
    let pair = m
        .block_on(
            token
                .client
                .generate_pair(spec, &priv_t, &pub_t, CallOptions::default()),
        )
        .map_err(|e| rv(&e, Doing::Create))?;
    let public = token.remember(pair.public).key.handle;
    let private = token.remember(pair.private).key.handle;
    Ok((public, private))
}

/// `C_WrapKey`: the wrapped bytes (PKCS#8 for private keys, the value for secret keys).
pub(crate) fn wrap(
    m: &Module,
    token: &Token,
    mech: &Mech,
    wrapping: u64,
    target: u64,
) -> Rv<Vec<u8>> {
    let w = m.key(token, wrapping, Doing::KeyOp).map_err(|e| {
        if e == CKR_KEY_HANDLE_INVALID {
            CKR_WRAPPING_KEY_HANDLE_INVALID
        } else {
            e
        }
    })?;
    let name = wrap_mech(mech, type_name(&w.key))?;
    if !w.key.attributes.wrap {
        return Err(CKR_KEY_FUNCTION_NOT_PERMITTED);
    }
    let t = m.key(token, target, Doing::KeyOp)?;
    if !t.key.attributes.extractable {
        return Err(CKR_KEY_UNEXTRACTABLE);
    }
    m.block_on(token.client.wrap(wrapping, name, target))
        .map_err(|e| match rv(&e, Doing::KeyOp) {
            CKR_KEY_FUNCTION_NOT_PERMITTED => CKR_KEY_NOT_WRAPPABLE,
            other => other,
        })
}

/// `C_UnwrapKey`: a new key from wrapped bytes and a template (`CKA_CLASS` required; a
/// secret key's `CKA_KEY_TYPE` too, and `CKA_VALUE_LEN` unless AES key wrap tells it).
pub(crate) fn unwrap(
    m: &Module,
    token: &Token,
    mech: &Mech,
    unwrapping: u64,
    wrapped: &[u8],
    t: &Template,
) -> Rv<u64> {
    let u = m.key(token, unwrapping, Doing::KeyOp).map_err(|e| {
        if e == CKR_KEY_HANDLE_INVALID {
            CKR_UNWRAPPING_KEY_HANDLE_INVALID
        } else {
            e
        }
    })?;
    let name = wrap_mech(mech, type_name(&u.key)).map_err(|e| match e {
        CKR_WRAPPING_KEY_TYPE_INCONSISTENT => CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT,
        other => other,
    })?;
    if !u.key.attributes.unwrap {
        return Err(CKR_KEY_FUNCTION_NOT_PERMITTED);
    }
    let class = t.class.ok_or(CKR_TEMPLATE_INCOMPLETE)?;
    let spec = match class {
        CKO_SECRET_KEY => {
            let kind = t
                .key_type
                .and_then(type_name_of_ckk)
                .ok_or(CKR_TEMPLATE_INCOMPLETE)?;
            // AES-KW and AES-KWP of an 8-byte-multiple key add exactly 8 bytes.
            let inferred = (name.starts_with("aes-kw") && kind == "aes")
                .then(|| wrapped.len().saturating_sub(8) as CK_ULONG);
            Some(secret_spec(kind, t.value_len.or(inferred))?)
        }
        CKO_PRIVATE_KEY => None,
        _ => return Err(CKR_TEMPLATE_INCONSISTENT),
    };
    let template = t.key_template(class, &fresh_label(), &[])?;
    let key = m
        .block_on(token.client.unwrap(
            unwrapping,
            name,
            wrapped,
            spec.as_deref(),
            &template,
            CallOptions::default(),
        ))
        .map_err(|e| match rv(&e, Doing::Decrypt) {
            CKR_ENCRYPTED_DATA_INVALID => CKR_WRAPPED_KEY_INVALID,
            other => other,
        })?;
    Ok(token.remember(key).key.handle)
}

/// `C_DeriveKey` with `CKM_ECDH1_DERIVE` and `CKD_NULL` (the HSM's other KDF, HKDF-SHA256,
/// is not among PKCS#11's): a secret key (`CKA_CLASS` secret, `CKA_KEY_TYPE` AES or generic
/// secret, `CKA_VALUE_LEN`; an AES key without one is as long as the shared secret allows,
/// up to 32 bytes) whose value is the leftmost bytes of the shared secret Z. The peer's public
/// value is an uncompressed point, bare or in a DER OCTET STRING.
pub(crate) fn derive(m: &Module, token: &Token, mech: &Mech, base: u64, t: &Template) -> Rv<u64> {
    let Param::Ecdh {
        kdf,
        shared_len,
        public,
    } = &mech.param
    else {
        return Err(if mech.kind == CKM_ECDH1_DERIVE {
            CKR_MECHANISM_PARAM_INVALID
        } else {
            CKR_MECHANISM_INVALID
        });
    };
    if *kdf != CKD_NULL || *shared_len != 0 {
        return Err(CKR_MECHANISM_PARAM_INVALID);
    }
    let b = m.key(token, base, Doing::KeyOp)?;
    if type_name(&b.key) != "ec" || class_of(&b.key) != CKO_PRIVATE_KEY {
        return Err(CKR_KEY_TYPE_INCONSISTENT);
    }
    if t.class.is_some_and(|c| c != CKO_SECRET_KEY) {
        return Err(CKR_TEMPLATE_INCONSISTENT);
    }
    let kind = t
        .key_type
        .and_then(type_name_of_ckk)
        .ok_or(CKR_TEMPLATE_INCOMPLETE)?;
    let z_len: CK_ULONG = match b.key.spec.as_str() {
        "ec-p384" => 48,
        "ec-p521" => 66,
        _ => 32,
    };
    // The uncompressed point (0x04 ‖ x ‖ y), bare or in a DER OCTET STRING (04 len, or
    // 04 81 len for P-521's 133 bytes).
    let point_len = 1 + 2 * z_len as usize;
    let point = match public.as_slice() {
        p if p.len() == point_len => p,
        [0x04, n, rest @ ..] if usize::from(*n) == point_len && rest.len() == point_len => rest,
        [0x04, 0x81, n, rest @ ..] if usize::from(*n) == point_len && rest.len() == point_len => {
            rest
        }
        _ => return Err(CKR_MECHANISM_PARAM_INVALID),
    };
    let len = t.value_len.or((kind == "aes").then_some(z_len.min(32)));
    let spec = secret_spec(kind, len)?;
    let template = t.key_template(CKO_SECRET_KEY, &fresh_label(), secret_usage(kind))?;
    let key = m
        .block_on(
            token
                .client
                .derive_no_kdf(base, point, &spec, &template, CallOptions::default()),
        )
        .map_err(|e| rv(&e, Doing::Create))?;
    Ok(token.remember(key).key.handle)
}

/// `C_SetAttributeValue`: `CKA_LABEL`, `CKA_ID` and the boolean attributes, one by one as the
/// HSM allows each (it refuses, e.g., turning `CKA_EXTRACTABLE` on).
pub(crate) fn set_attributes(
    m: &Module,
    token: &Token,
    handle: u64,
    attrs: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
) -> Rv {
    m.key(token, handle, Doing::Object)?;
    let mut changes = Vec::new();
    for (ty, v) in attrs {
        let change = if let Some((_, name)) = BOOLS.iter().find(|(b, _)| b == ty) {
            match v.as_slice() {
                [b] => (*name, serde_json::Value::Bool(*b != 0)),
                _ => return Err(CKR_ATTRIBUTE_VALUE_INVALID),
            }
        } else {
            match *ty {
                CKA_LABEL => (
                    "label",
                    serde_json::Value::String(
                        String::from_utf8(v.clone()).map_err(|_| CKR_ATTRIBUTE_VALUE_INVALID)?,
                    ),
                ),
                CKA_ID => ("id", serde_json::Value::String(hex::encode(v))),
                CKA_CLASS
                | CKA_KEY_TYPE
                | CKA_LOCAL
                | CKA_VALUE_LEN
                | CKA_EC_PARAMS
                | CKA_MODULUS
                | CKA_PUBLIC_EXPONENT
                | CKA_NEVER_EXTRACTABLE
                | CKA_ALWAYS_SENSITIVE => return Err(CKR_ATTRIBUTE_READ_ONLY),
                _ => return Err(CKR_ATTRIBUTE_TYPE_INVALID),
            }
        };
        changes.push(change);
    }
    let result = changes.into_iter().try_for_each(|(name, value)| {
        m.block_on(token.client.set_attribute(handle, name, value))
            .map(|_| ())
            .map_err(|e| rv(&e, Doing::Object))
    });
    token.forget(handle);
    result
}

/// `C_DestroyObject`.
pub(crate) fn destroy(m: &Module, token: &Token, handle: u64) -> Rv {
    token.need_login()?;
    let r = m
        .block_on(token.client.destroy(handle))
        .map_err(|e| rv(&e, Doing::Object));
    token.forget(handle);
    r
}
