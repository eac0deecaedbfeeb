//! Just enough PEM (RFC 7468) and DER (X.690) to hand JWT public keys to `ring`, which wants the
//! bare key: the PKCS#1 `RSAPublicKey` for RSA, the uncompressed point for P-256.
//!
//! Keys arrive as `PUBLIC KEY` (a SubjectPublicKeyInfo, RFC 5280 §4.1.2.7) or, for RSA, as
//! `RSA PUBLIC KEY` (PKCS#1, RFC 8017 §A.1.1). Everything here reads from the config: every
//! length is checked against what is left, nothing indexes past a bound, and a malformed input
//! is an error, never a panic. Only definite, minimal (DER) lengths and single-byte tags are
//! accepted, and nothing may trail a structure.

use base64::Engine as _;

const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const NULL: u8 = 0x05;
const OID: u8 = 0x06;
const SEQUENCE: u8 = 0x30;

/// rsaEncryption, 1.2.840.113549.1.1.1 (RFC 8017 §A.1).
const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// id-ecPublicKey, 1.2.840.10045.2.1 (RFC 5480 §2.1.1).
const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// prime256v1 / secp256r1, 1.2.840.10045.3.1.7 (RFC 5480 §2.1.1.1).
const PRIME256V1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// RSA modulus sizes `ring` verifies (`RSA_PKCS1_2048_8192_SHA256`).
const RSA_MIN_BITS: usize = 2048;
const RSA_MAX_BITS: usize = 8192;

/// Why a key was refused; shown in config errors.
pub(super) type Reason = String;

/// A cursor over DER input.
pub(super) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn new(input: &'a [u8]) -> Reader<'a> {
        Reader { rest: input }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn byte(&mut self) -> Result<u8, Reason> {
        let (&b, rest) = self.rest.split_first().ok_or("truncated DER")?;
        self.rest = rest;
        Ok(b)
    }

    /// One tag-length-value: the tag and the value.
    pub(super) fn read(&mut self) -> Result<(u8, &'a [u8]), Reason> {
        let tag = self.byte()?;
        if tag & 0x1f == 0x1f {
            return Err("DER: multi-byte tags are not supported".into());
        }
        let first = self.byte()?;
        let len = match first {
            0..=0x7f => usize::from(first),
            0x80 => return Err("DER: indefinite length".into()),
            _ => {
                let n = usize::from(first & 0x7f);
                // Four length bytes are 4 GiB: more than any key.
                if n > 4 {
                    return Err("DER: length too large".into());
                }
                let mut len: usize = 0;
                for i in 0..n {
                    let b = self.byte()?;
                    if i == 0 && b == 0 {
                        return Err("DER: length not minimal".into());
                    }
                    len = len
                        .checked_mul(256)
                        .and_then(|l| l.checked_add(usize::from(b)))
                        .ok_or("DER: length too large")?;
                }
                if len < 0x80 {
                    return Err("DER: length not minimal".into());
                }
                len
            }
        };
        if len > self.rest.len() {
            return Err("truncated DER".into());
        }
        let (value, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok((tag, value))
    }

    /// The value of the next element, which must have this tag.
    pub(super) fn expect(&mut self, tag: u8) -> Result<&'a [u8], Reason> {
        let (got, value) = self.read()?;
        if got != tag {
            return Err(format!("DER: expected tag 0x{tag:02x}, found 0x{got:02x}"));
        }
        Ok(value)
    }

    /// Nothing may follow.
    pub(super) fn finish(&self) -> Result<(), Reason> {
        if self.is_empty() {
            Ok(())
        } else {
            Err("DER: unexpected trailing data".into())
        }
    }
}

/// The value of the single element `input` holds, which must have this tag.
fn only(input: &[u8], tag: u8) -> Result<&[u8], Reason> {
    let mut r = Reader::new(input);
    let value = r.expect(tag)?;
    r.finish()?;
    Ok(value)
}

/// The parts of a SubjectPublicKeyInfo.
pub(super) struct Spki<'a> {
    /// The algorithm OID's value.
    pub(super) algorithm: &'a [u8],
    /// The algorithm's parameters, tag and value, if any.
    pub(super) parameters: Option<(u8, &'a [u8])>,
    /// The key: the BIT STRING's octets.
    pub(super) key: &'a [u8],
}

/// A SubjectPublicKeyInfo taken apart.
pub(super) fn spki(der: &[u8]) -> Result<Spki<'_>, Reason> {
    let mut seq = Reader::new(only(der, SEQUENCE)?);
    let mut alg = Reader::new(seq.expect(SEQUENCE)?);
    let bits = seq.expect(BIT_STRING)?;
    seq.finish()?;
    let oid = alg.expect(OID)?;
    let params = if alg.is_empty() {
        None
    } else {
        Some(alg.read()?)
    };
    alg.finish()?;
    // The first octet of a BIT STRING counts the unused bits of the last: none, for a key.
    match bits.split_first() {
        Some((0, key)) => Ok(Spki {
            algorithm: oid,
            parameters: params,
            key,
        }),
        Some(_) => Err("DER: key BIT STRING has unused bits".into()),
        None => Err("DER: empty BIT STRING".into()),
    }
}

/// The PKCS#1 `RSAPublicKey` inside an RSA SubjectPublicKeyInfo.
pub(super) fn rsa_spki(der: &[u8]) -> Result<&[u8], Reason> {
    let Spki {
        algorithm: oid,
        parameters: params,
        key,
    } = spki(der)?;
    if oid != RSA_ENCRYPTION {
        return Err(format!(
            "not an RSA key (algorithm {}, expected rsaEncryption 1.2.840.113549.1.1.1)",
            oid_text(oid)
        ));
    }
    // RFC 3279 §2.3.1: the parameters are NULL (some encoders leave them out).
    match params {
        None | Some((NULL, [])) => {}
        Some(_) => return Err("rsaEncryption parameters must be NULL".into()),
    }
    rsa_pkcs1(key)?;
    Ok(key)
}

/// Checks a PKCS#1 `RSAPublicKey` (`SEQUENCE { modulus INTEGER, publicExponent INTEGER }`)
/// against what `ring` verifies with, so that a key it would refuse is refused at load rather
/// than failing every token.
pub(super) fn rsa_pkcs1(der: &[u8]) -> Result<(), Reason> {
    let mut seq = Reader::new(only(der, SEQUENCE)?);
    let n = positive_integer(seq.expect(INTEGER)?)?;
    let e = positive_integer(seq.expect(INTEGER)?)?;
    seq.finish()?;
    let bits = bit_len(n);
    if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
        return Err(format!(
            "RSA modulus of {bits} bits: {RSA_MIN_BITS} to {RSA_MAX_BITS} supported"
        ));
    }
    if n.last().is_none_or(|b| b & 1 == 0) {
        return Err("RSA modulus is even".into());
    }
    // ring: 3 <= e < 2^33, odd.
    if bit_len(e) > 33 || e.last().is_none_or(|b| b & 1 == 0) || matches!(e, [b] if *b < 3) {
        return Err("RSA public exponent must be odd, at least 3 and below 2^33".into());
    }
    Ok(())
}

/// The uncompressed P-256 point (`04 || x || y`) inside an EC SubjectPublicKeyInfo.
pub(super) fn p256_spki(der: &[u8]) -> Result<&[u8], Reason> {
    let Spki {
        algorithm: oid,
        parameters: params,
        key,
    } = spki(der)?;
    if oid != EC_PUBLIC_KEY {
        return Err(format!(
            "not an EC key (algorithm {}, expected id-ecPublicKey 1.2.840.10045.2.1)",
            oid_text(oid)
        ));
    }
    match params {
        Some((OID, curve)) if curve == PRIME256V1 => {}
        Some((OID, curve)) => {
            return Err(format!(
                "EC curve {} is not P-256 (prime256v1 1.2.840.10045.3.1.7)",
                oid_text(curve)
            ));
        }
        _ => return Err("EC key without a named curve".into()),
    }
    match key {
        [0x04, ..] if key.len() == 65 => Ok(key),
        [0x02 | 0x03, ..] => Err("compressed EC points are not supported".into()),
        _ => Err("P-256 public key must be a 65-byte uncompressed point".into()),
    }
}

/// The magnitude of a positive DER INTEGER, without its sign octet.
fn positive_integer(value: &[u8]) -> Result<&[u8], Reason> {
    match value {
        [] => Err("DER: empty INTEGER".into()),
        [b, ..] if b & 0x80 != 0 => Err("DER: negative INTEGER".into()),
        [0] => Err("DER: zero INTEGER".into()),
        [0, b, ..] if b & 0x80 == 0 => Err("DER: INTEGER not minimal".into()),
        [0, rest @ ..] => Ok(rest),
        _ => Ok(value),
    }
}

/// Bits in a big-endian magnitude whose first byte is non-zero.
fn bit_len(magnitude: &[u8]) -> usize {
    match magnitude.first() {
        Some(&b) => magnitude.len() * 8 - b.leading_zeros() as usize,
        None => 0,
    }
}

/// Dotted text of an OID, for error messages (`?` where the encoding is bad).
fn oid_text(oid: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    for &b in oid {
        value = match value.checked_mul(128) {
            Some(v) => v | u64::from(b & 0x7f),
            None => return "?".into(),
        };
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.push(first);
                arcs.push(value - first * 40);
            } else {
                arcs.push(value);
            }
            value = 0;
        }
    }
    if arcs.is_empty() || oid.last().is_some_and(|b| b & 0x80 != 0) {
        return "?".into();
    }
    let arcs: Vec<String> = arcs.iter().map(u64::to_string).collect();
    arcs.join(".")
}

/// The first PEM section of `text`: its label and its DER. Text before the section is allowed
/// (RFC 7468 §5.2); encapsulated headers (encrypted keys) are not.
///
/// rustls-pki-types has a PEM reader, but it skips labels it does not know, and it does not
/// know `RSA PUBLIC KEY`.
pub(super) fn pem(text: &str) -> Result<(String, Vec<u8>), Reason> {
    let mut lines = text.lines().map(str::trim);
    let label = lines
        .by_ref()
        .find_map(|l| l.strip_prefix("-----BEGIN ")?.strip_suffix("-----"))
        .ok_or("no PEM section (-----BEGIN ...-----)")?;
    let end = format!("-----END {label}-----");
    let mut b64 = String::new();
    let mut ended = false;
    for line in lines {
        if line == end {
            ended = true;
            break;
        }
        if line.starts_with("-----") {
            return Err(format!("PEM: expected {end:?}, found {line:?}"));
        }
        b64.extend(line.chars().filter(|c| !c.is_ascii_whitespace()));
    }
    if !ended {
        return Err(format!("PEM: no {end:?}"));
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(&b64)
        .map_err(|e| format!("PEM: bad base64: {e}"))?;
    if der.is_empty() {
        return Err("PEM: empty section".into());
    }
    Ok((label.to_string(), der))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn lengths() {
        assert_eq!(
            Reader::new(&[0x04, 0x01, 0xaa]).read().unwrap(),
            (4, &[0xaa][..])
        );
        let mut long = vec![0x04, 0x81, 0x80];
        long.extend([0u8; 0x80]);
        assert_eq!(Reader::new(&long).read().unwrap().1.len(), 0x80);
        for bad in [
            &[][..],
            &[0x04],
            &[0x04, 0x02, 0x00],                   // value truncated
            &[0x04, 0x80, 0x00, 0x00],             // indefinite
            &[0x04, 0x81, 0x05, 1, 2, 3, 4, 5],    // long form for a short length
            &[0x04, 0x82, 0x00, 0x80],             // leading zero length byte
            &[0x04, 0x85, 1, 0, 0, 0, 0],          // five length bytes
            &[0x04, 0x84, 0xff, 0xff, 0xff, 0xff], // 4 GiB, not there
            &[0x1f, 0x01, 0x00],                   // multi-byte tag
        ] {
            assert!(Reader::new(bad).read().is_err(), "{bad:02x?}");
        }
    }

    #[test]
    fn oids_print() {
        assert_eq!(oid_text(RSA_ENCRYPTION), "1.2.840.113549.1.1.1");
        assert_eq!(oid_text(PRIME256V1), "1.2.840.10045.3.1.7");
        assert_eq!(oid_text(&[0x2a, 0x86]), "?");
        assert_eq!(oid_text(&[]), "?");
        assert_eq!(oid_text(&[0xff; 40]), "?");
    }

    #[test]
    fn pem_sections() {
        let (label, der) = pem("junk\n-----BEGIN X-----\nAAEC\nAw==\n-----END X-----\n").unwrap();
        assert_eq!((label.as_str(), der.as_slice()), ("X", &[0, 1, 2, 3][..]));
        for bad in [
            "",
            "AAEC",
            "-----BEGIN X-----\nAAEC\n",
            "-----BEGIN X-----\nAAEC\n-----END Y-----\n",
            "-----BEGIN X-----\nAA*C\n-----END X-----\n",
            "-----BEGIN X-----\nAAE\n-----END X-----\n",
            "-----BEGIN X-----\n-----END X-----\n",
            "-----BEGIN X-----\nProc-Type: 4,ENCRYPTED\nAAEC\n-----END X-----\n",
        ] {
            assert!(pem(bad).is_err(), "{bad:?}");
        }
    }
}
