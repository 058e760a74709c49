//! The verified client certificate's subject as an RFC 4514 string, the value of the
//! listener's `subject_header` (set by the HTTP layer's `rewrite` step).

/// The RFC 4514 string of a distinguished name: RDNs last-to-first, `+` between the
/// attributes of a multi-valued RDN, short names for the types RFC 4514 §3 lists (others as
/// dotted OIDs with `#` and the hex DER value), and special characters escaped (§2.4).
/// Control and non-ASCII bytes are escaped as `\XX` hex pairs, so the result is always a
/// valid HTTP header value.
pub(crate) fn rfc4514(name: &x509_parser::x509::X509Name<'_>) -> String {
    use x509_parser::der_parser::asn1_rs::ToDer;
    const SHORT: [(&str, &str); 9] = [
        ("2.5.4.3", "CN"),
        ("2.5.4.7", "L"),
        ("2.5.4.8", "ST"),
        ("2.5.4.10", "O"),
        ("2.5.4.11", "OU"),
        ("2.5.4.6", "C"),
        ("2.5.4.9", "STREET"),
        ("0.9.2342.19200300.100.1.25", "DC"),
        ("0.9.2342.19200300.100.1.1", "UID"),
    ];
    let mut out = String::new();
    let rdns: Vec<_> = name.iter().collect();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, attr) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            let oid = attr.attr_type().to_id_string();
            let short = SHORT.iter().find(|(o, _)| *o == oid).map(|(_, n)| *n);
            match (short, attr.as_str()) {
                (Some(n), Ok(value)) => {
                    out.push_str(n);
                    out.push('=');
                    escape_value(value, &mut out);
                }
                _ => {
                    out.push_str(&oid);
                    out.push_str("=#");
                    for b in attr.attr_value().to_der_vec().unwrap_or_default() {
                        out.push_str(&format!("{b:02X}"));
                    }
                }
            }
        }
    }
    out
}

fn escape_value(value: &str, out: &mut String) {
    let bytes = value.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let special = matches!(b, b'"' | b'+' | b',' | b';' | b'<' | b'>' | b'\\')
            || (i == 0 && (b == b' ' || b == b'#'))
            || (i + 1 == bytes.len() && b == b' ');
        if special {
            out.push('\\');
            out.push(char::from(b));
        } else if !(0x20..0x7f).contains(&b) {
            out.push_str(&format!("\\{b:02X}"));
        } else {
            out.push(char::from(b));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::rfc4514;
    use x509_parser::prelude::FromDer;

    #[test]
    fn subjects_are_rfc4514_strings_with_escapes() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CountryName, "DE");
        dn.push(rcgen::DnType::OrganizationName, "Acme, Inc.");
        dn.push(rcgen::DnType::CommonName, "guest, O=Admins\r\n#x ");
        params.distinguished_name = dn;
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let (_, parsed) = x509_parser::certificate::X509Certificate::from_der(cert.der()).unwrap();
        assert_eq!(
            rfc4514(parsed.subject()),
            "CN=guest\\, O=Admins\\0D\\0A#x\\ ,O=Acme\\, Inc.,C=DE"
        );
    }
}
