//! Raw DER TLV splitting, for the places where a signature covers bytes exactly as received
//! (an OCSP response's tbsResponseData, the certificates beside it): decoding and re-encoding
//! could change them.

/// Splits one TLV off the front of `input`: (the whole TLV, its value, the rest). Low-tag-number
/// form and definite lengths only, as DER requires.
pub(crate) fn split(input: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let (&tag, after_tag) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None; // high-tag-number form: never used by these structures
    }
    let (&first, after_len) = after_tag.split_first()?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || after_len.len() < n {
            return None; // indefinite length, or larger than any sane structure here
        }
        let len = after_len[..n].iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    if input.len() < end {
        return None;
    }
    Some((&input[..end], &input[header..end], &input[end..]))
}

/// The value of a TLV with tag `expected`, and the rest.
pub(crate) fn expect(input: &[u8], expected: u8) -> Option<(&[u8], &[u8], &[u8])> {
    let parts = split(input)?;
    (input[0] == expected).then_some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_short_and_long_lengths() {
        let short = [0x30, 0x02, 0x05, 0x00, 0xff];
        assert_eq!(split(&short), Some((&short[..4], &short[2..4], &short[4..])));
        let mut long = vec![0x04, 0x81, 0x80];
        long.extend(std::iter::repeat_n(7u8, 0x80));
        let (tlv, value, rest) = split(&long).unwrap();
        assert_eq!((tlv.len(), value.len(), rest.len()), (0x83, 0x80, 0));
    }

    #[test]
    fn refuses_truncated_and_indefinite() {
        assert_eq!(split(&[0x30, 0x05, 0x00]), None);
        assert_eq!(split(&[0x30, 0x80, 0x00, 0x00]), None);
        assert_eq!(split(&[]), None);
    }
}
