//! NHS numbers: ten digits, the last a modulus-11 check digit.

/// Whether `s` is a well-formed NHS number (ten ASCII digits with a valid check digit).
pub fn is_valid(s: &str) -> bool {
    let bytes = s.as_bytes();
    if bytes.len() != 10 || !bytes.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = bytes[..9].iter().zip((2..=10).rev()).map(|(d, w)| u32::from(d - b'0') * w).sum();
    match 11 - sum % 11 {
        11 => bytes[9] == b'0',
        10 => false,
        check => u32::from(bytes[9] - b'0') == check,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_test_numbers_are_valid() {
        for n in ["9000000009", "9000000017", "9000000025", "9000000033", "9434765919"] {
            assert!(is_valid(n), "{n}");
        }
    }

    #[test]
    fn wrong_check_digit_length_or_characters_are_invalid() {
        for n in ["9000000000", "900000000", "90000000091", "900000000x", "", "９000000009"] {
            assert!(!is_valid(n), "{n}");
        }
    }
}
