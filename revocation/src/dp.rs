//! Distribution point names, read from raw DER on both sides — a certificate's CRL distribution
//! points and a CRL's IssuingDistributionPoint — so they compare by the same spelling.
//!
//! A general parser that silently drops a name form it does not know would turn a partitioned CRL
//! into a "full" one that covers everything: fail open. Here every form is kept: URIs as
//! `uri:<uri>`, directory names as `dn:<hex of the Name DER>`, a name relative to the CRL issuer
//! expanded to the full directory name (RFC 5280 §4.2.1.13), and anything else as
//! `other:<hex of its DER>`, which only matches itself.

use crate::tlv;

/// What an IssuingDistributionPoint says.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Idp {
    /// Names of the distribution point; `None` when the IDP names none (a full CRL).
    pub(crate) names: Option<Vec<String>>,
    pub(crate) only_user: bool,
    pub(crate) only_ca: bool,
    pub(crate) only_some_reasons: bool,
    pub(crate) indirect: bool,
    pub(crate) only_attribute_certs: bool,
}

/// Parses an IssuingDistributionPoint extension value for a CRL issued by `issuer_name` (Name
/// DER).
pub(crate) fn idp(value: &[u8], issuer_name: &[u8]) -> Option<Idp> {
    let (_, mut body, rest) = tlv::expect(value, 0x30)?;
    if !rest.is_empty() {
        return None;
    }
    let mut idp = Idp::default();
    while let Some((field, content, rest)) = tlv::split(body) {
        body = rest;
        match field[0] {
            0xa0 => idp.names = Some(point_name(content, issuer_name)?),
            0x81 => idp.only_user = content == [0xff],
            0x82 => idp.only_ca = content == [0xff],
            0x83 => idp.only_some_reasons = true,
            0x84 => idp.indirect = content == [0xff],
            0x85 => idp.only_attribute_certs = content == [0xff],
            _ => return None,
        }
    }
    body.is_empty().then_some(idp)
}

/// Every distribution point name in a CRLDistributionPoints extension value of a certificate
/// issued by `issuer_name`. Points naming a separate cRLIssuer are kept as `other:` names (indirect
/// CRLs are not supported, so they never match).
pub(crate) fn cdp_names(value: &[u8], issuer_name: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let Some((_, mut points, _)) = tlv::expect(value, 0x30) else { return out };
    while let Some((_, point, rest)) = tlv::expect(points, 0x30) {
        points = rest;
        let mut fields = point;
        let mut names = None;
        let mut crl_issuer = false;
        while let Some((field, content, rest)) = tlv::split(fields) {
            fields = rest;
            match field[0] {
                0xa0 => names = point_name(content, issuer_name),
                0xa2 => crl_issuer = true,
                _ => {}
            }
        }
        match (names, crl_issuer) {
            (Some(names), false) => out.extend(names),
            (Some(names), true) => out.extend(names.into_iter().map(|n| format!("other:indirect:{n}"))),
            (None, _) => {}
        }
    }
    out
}

/// DistributionPointName (the content of its `[0]` wrapper): fullName `[0]` GeneralNames or
/// nameRelativeToCRLIssuer `[1]` RelativeDistinguishedName.
fn point_name(wrapped: &[u8], issuer_name: &[u8]) -> Option<Vec<String>> {
    let (choice, content, _) = tlv::split(wrapped)?;
    match choice[0] {
        0xa0 => {
            let mut names = Vec::new();
            let mut rest = content;
            while let Some((name, value, r)) = tlv::split(rest) {
                rest = r;
                names.push(match name[0] {
                    0x86 => format!("uri:{}", String::from_utf8_lossy(value)),
                    // directoryName [4] is explicit: its content is the Name SEQUENCE.
                    0xa4 => format!("dn:{}", hex(value)),
                    _ => format!("other:{}", hex(name)),
                });
            }
            Some(names)
        }
        0xa1 => {
            // The issuer's name with this RDN appended: SEQUENCE { issuer RDNs…, SET { content } }.
            let (_, issuer_rdns, _) = tlv::expect(issuer_name, 0x30)?;
            let mut rdn = vec![0x31];
            push_length(&mut rdn, content.len());
            rdn.extend_from_slice(content);
            let mut full = vec![0x30];
            push_length(&mut full, issuer_rdns.len() + rdn.len());
            full.extend_from_slice(issuer_rdns);
            full.extend_from_slice(&rdn);
            Some(vec![format!("dn:{}", hex(&full))])
        }
        _ => Some(vec![format!("other:{}", hex(choice))]),
    }
}

fn push_length(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Name: SEQUENCE { SET { SEQUENCE { OID 2.5.4.3, UTF8String "CA" } } }
    const ISSUER: &[u8] = &[0x30, 0x0d, 0x31, 0x0b, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x02, b'C', b'A'];

    #[test]
    fn relative_name_expands_to_the_issuer_name_plus_the_rdn() {
        // IDP { [0] { [1] { SEQUENCE { OID 2.5.4.3, UTF8String "P1" } } } }
        let rdn_content = [0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x02, b'P', b'1'];
        let mut value = vec![0x30, 0x0f, 0xa0, 0x0d, 0xa1, 0x0b];
        value.extend_from_slice(&rdn_content);
        let idp = idp(&value, ISSUER).unwrap();
        let names = idp.names.unwrap();
        let mut full = vec![0x30, 0x1a];
        full.extend_from_slice(&ISSUER[2..]);
        full.extend_from_slice(&[0x31, 0x0b]);
        full.extend_from_slice(&rdn_content);
        assert_eq!(names, vec![format!("dn:{}", hex(&full))]);
    }

    #[test]
    fn idp_without_a_distribution_point_is_a_full_crl_and_flags_are_read() {
        let idp = idp(&[0x30, 0x03, 0x81, 0x01, 0xff], ISSUER).unwrap();
        assert_eq!(idp.names, None);
        assert!(idp.only_user && !idp.only_ca);
        assert_eq!(super::idp(&[0x30, 0x02, 0x99, 0x00], ISSUER), None, "unknown field");
    }

    #[test]
    fn cdp_uri_and_indirect_points() {
        // SEQUENCE { SEQUENCE { [0] { [0] { [6] "http://a" } } } }
        let value = [0x30, 0x0e, 0x30, 0x0c, 0xa0, 0x0a, 0xa0, 0x08, 0x86, 0x06, b'h', b't', b't', b'p', b':', b'a'];
        assert_eq!(cdp_names(&value, ISSUER), vec!["uri:http:a".to_owned()]);
    }
}
