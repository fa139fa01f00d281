//! Just enough DER reading for the three structures release signing meets: a
//! SubjectPublicKeyInfo, a SEC1 `ECPrivateKey` and an ECDSA `Ecdsa-Sig-Value`.
//!
//! `ring` parses these internally but does not expose the parsers, and the ones it does
//! expose report every failure as the same opaque error. Reading the outer structure here lets
//! us tell a release manager *which* part of a key or signature is wrong, and keeps a full ASN.1
//! crate out of the dependency tree. Only definite-length DER is accepted; anything else is
//! an error, never a guess.

use std::fmt;

pub(crate) const TAG_INTEGER: u8 = 0x02;
pub(crate) const TAG_BIT_STRING: u8 = 0x03;
pub(crate) const TAG_OCTET_STRING: u8 = 0x04;
#[cfg(test)]
pub(crate) const TAG_NULL: u8 = 0x05;
pub(crate) const TAG_OID: u8 = 0x06;
pub(crate) const TAG_SEQUENCE: u8 = 0x30;
pub(crate) const TAG_CONTEXT_0: u8 = 0xA0;
pub(crate) const TAG_CONTEXT_1: u8 = 0xA1;

/// OID 1.2.840.10045.2.1 (`id-ecPublicKey`), content octets only.
pub(crate) const OID_EC_PUBLIC_KEY: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
/// OID 1.2.840.10045.3.1.7 (`prime256v1` / `secp256r1`).
pub(crate) const OID_P256: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
/// OID 1.3.132.0.34 (`secp384r1`), recognised only to name it in an error.
pub(crate) const OID_P384: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x22];
/// OID 1.3.101.112 (`id-Ed25519`).
pub(crate) const OID_ED25519: &[u8] = &[0x2B, 0x65, 0x70];
/// OID 1.2.840.113549.1.1.1 (`rsaEncryption`), recognised only to name it in an error.
pub(crate) const OID_RSA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];

/// Why a DER structure could not be read. Callers wrap it with what they were reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DerError(pub &'static str);

impl fmt::Display for DerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for DerError {}

/// A cursor over DER bytes.
pub(crate) struct Reader<'a> {
    input: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(input: &'a [u8]) -> Self {
        Self { input }
    }

    pub(crate) fn peek_tag(&self) -> Option<u8> {
        self.input.first().copied()
    }

    /// Reads one element with the given tag and returns its content octets.
    pub(crate) fn expect(&mut self, tag: u8) -> Result<&'a [u8], DerError> {
        let (&actual, rest) = self
            .input
            .split_first()
            .ok_or(DerError("structure ends early"))?;
        if actual != tag {
            return Err(DerError("unexpected element"));
        }
        let (&first, rest) = rest.split_first().ok_or(DerError("structure ends early"))?;
        let (len, rest) = match first {
            0x00..=0x7F => (usize::from(first), rest),
            0x81 => {
                let (&b, rest) = rest.split_first().ok_or(DerError("structure ends early"))?;
                if b < 0x80 {
                    return Err(DerError("length not minimally encoded (BER, not DER)"));
                }
                (usize::from(b), rest)
            }
            0x82 => {
                let bytes = rest.get(..2).ok_or(DerError("structure ends early"))?;
                let len = usize::from(bytes[0]) << 8 | usize::from(bytes[1]);
                if len < 0x100 {
                    return Err(DerError("length not minimally encoded (BER, not DER)"));
                }
                (len, &rest[2..])
            }
            // Nothing we read is anywhere near 64 KiB, and indefinite lengths (0x80) are BER.
            _ => return Err(DerError("unsupported length encoding")),
        };
        if rest.len() < len {
            return Err(DerError("structure is truncated"));
        }
        let (content, rest) = rest.split_at(len);
        self.input = rest;
        Ok(content)
    }

    /// Reads a SEQUENCE and returns a reader over its content.
    pub(crate) fn sequence(&mut self) -> Result<Reader<'a>, DerError> {
        self.expect(TAG_SEQUENCE).map(Reader::new)
    }

    /// Reads a BIT STRING that must hold whole bytes (as keys do).
    pub(crate) fn bit_string(&mut self) -> Result<&'a [u8], DerError> {
        match self.expect(TAG_BIT_STRING)?.split_first() {
            Some((0, bits)) => Ok(bits),
            _ => Err(DerError("bit string with unused bits")),
        }
    }

    /// Reads a non-negative INTEGER and returns its magnitude without the sign padding.
    pub(crate) fn positive_integer(&mut self) -> Result<&'a [u8], DerError> {
        let content = self.expect(TAG_INTEGER)?;
        match content {
            [] => Err(DerError("empty integer")),
            [first, ..] if first & 0x80 != 0 => Err(DerError("negative integer")),
            [0] => Ok(content),
            [0, second, ..] if second & 0x80 == 0 => Err(DerError("integer not minimally encoded")),
            [0, rest @ ..] => Ok(rest),
            _ => Ok(content),
        }
    }

    /// Fails unless every byte has been consumed: trailing data would make two different
    /// byte strings decode to the same value.
    pub(crate) fn finish(&self) -> Result<(), DerError> {
        if self.input.is_empty() {
            Ok(())
        } else {
            Err(DerError("unexpected data after the structure"))
        }
    }
}

/// Writes a tag and a DER length; the few structures we emit are all shorter than 64 KiB.
pub(crate) fn write_header(out: &mut Vec<u8>, tag: u8, len: usize) {
    debug_assert!(len <= 0xFFFF, "DER element too long for write_header");
    out.push(tag);
    match len {
        0..=0x7F => out.extend_from_slice(&[len as u8]),
        0x80..=0xFF => out.extend_from_slice(&[0x81, len as u8]),
        _ => out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nested_structures_and_rejects_trailing_data() {
        let der = [0x30, 0x06, 0x02, 0x01, 0x05, 0x02, 0x01, 0x07];
        let mut outer = Reader::new(&der);
        let mut seq = outer.sequence().expect("sequence");
        assert_eq!(seq.positive_integer().expect("int"), &[5]);
        assert_eq!(seq.positive_integer().expect("int"), &[7]);
        seq.finish().expect("consumed");
        outer.finish().expect("consumed");

        let mut trailing = Reader::new(&[0x02, 0x01, 0x05, 0x00]);
        trailing.positive_integer().expect("int");
        assert!(trailing.finish().is_err());
    }

    #[test]
    fn rejects_truncation_and_non_minimal_encodings() {
        assert!(Reader::new(&[0x30, 0x05, 0x02]).sequence().is_err());
        assert!(
            Reader::new(&[0x30, 0x81, 0x05, 0, 0, 0, 0, 0])
                .sequence()
                .is_err()
        );
        assert!(
            Reader::new(&[0x02, 0x02, 0x00, 0x05])
                .positive_integer()
                .is_err()
        );
        assert!(Reader::new(&[0x02, 0x01, 0x85]).positive_integer().is_err());
        assert_eq!(
            Reader::new(&[0x02, 0x02, 0x00, 0x85]).positive_integer(),
            Ok(&[0x85][..])
        );
    }

    #[test]
    fn header_lengths_round_trip() {
        for len in [0usize, 0x7F, 0x80, 0xFF, 0x100, 0x1234] {
            let mut out = Vec::new();
            write_header(&mut out, TAG_OCTET_STRING, len);
            out.resize(out.len() + len, 0);
            let mut r = Reader::new(&out);
            assert_eq!(r.expect(TAG_OCTET_STRING).expect("reads").len(), len);
            r.finish().expect("consumed");
        }
    }
}
