//! The emergency deny list: certificate serials and user ids refused whatever any CA says. It
//! comes from a hot-reloaded file and from the admin endpoint.
//!
//! File format, one entry per line, `#` starts a comment:
//!
//! ```text
//! user 555000000002        # lost card, HR case 1234
//! serial 1f:a3:77:02       # hex, colons or spaces optional
//! ```

use std::collections::BTreeSet;

use crate::Serial;

/// One entry.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DenyEntry {
    /// A 12-digit user id.
    User(String),
    /// A certificate serial (any issuer).
    Serial(Serial),
}

impl DenyEntry {
    /// Parses `user <id>` or `serial <hex>`.
    pub fn parse(line: &str) -> Result<Self, String> {
        let line = line.split('#').next().unwrap_or("").trim();
        let (kind, value) = line.split_once(char::is_whitespace).ok_or("expected `user <id>` or `serial <hex>`")?;
        let value = value.trim();
        match kind {
            "user" => {
                if value.len() == 12 && value.bytes().all(|b| b.is_ascii_digit()) {
                    Ok(Self::User(value.to_owned()))
                } else {
                    Err(format!("{value:?} is not a 12-digit user id"))
                }
            }
            "serial" => {
                let hex: String = value.chars().filter(|c| !matches!(c, ':' | ' ')).collect();
                if hex.is_empty() || !hex.len().is_multiple_of(2) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(format!("{value:?} is not a hex serial"));
                }
                let bytes: Vec<u8> = (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("checked hex"))
                    .collect();
                Serial::from_der_bytes(&bytes).map(Self::Serial).map_err(|e| e.to_string())
            }
            other => Err(format!("unknown entry kind {other:?}; use `user` or `serial`")),
        }
    }
}

impl std::fmt::Display for DenyEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DenyEntry::User(u) => write!(f, "user {u}"),
            DenyEntry::Serial(s) => write!(f, "serial {s}"),
        }
    }
}

/// A set of entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DenyList {
    users: BTreeSet<String>,
    serials: BTreeSet<Serial>,
}

/// A deny-list file that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct DenyError {
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl DenyList {
    /// Parses the file format. Any bad line refuses the whole file, so a typo never silently
    /// drops an entry.
    pub fn parse(text: &str) -> Result<Self, DenyError> {
        let mut list = Self::default();
        for (i, line) in text.lines().enumerate() {
            let content = line.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            let entry = DenyEntry::parse(content).map_err(|message| DenyError { line: i + 1, message })?;
            list.insert(entry);
        }
        Ok(list)
    }

    /// Adds an entry.
    pub fn insert(&mut self, entry: DenyEntry) -> bool {
        match entry {
            DenyEntry::User(u) => self.users.insert(u),
            DenyEntry::Serial(s) => self.serials.insert(s),
        }
    }

    /// Removes an entry.
    pub fn remove(&mut self, entry: &DenyEntry) -> bool {
        match entry {
            DenyEntry::User(u) => self.users.remove(u),
            DenyEntry::Serial(s) => self.serials.remove(s),
        }
    }

    /// Whether the user id is denied.
    pub fn denies_user(&self, user_id: &str) -> bool {
        !self.users.is_empty() && self.users.contains(user_id)
    }

    /// Whether the serial is denied.
    pub fn denies_serial(&self, serial: &Serial) -> bool {
        !self.serials.is_empty() && self.serials.contains(serial)
    }

    /// Both lists together.
    pub fn union(&self, other: &DenyList) -> DenyList {
        DenyList {
            users: self.users.union(&other.users).cloned().collect(),
            serials: self.serials.union(&other.serials).cloned().collect(),
        }
    }

    /// Every entry, users first.
    pub fn entries(&self) -> impl Iterator<Item = DenyEntry> + '_ {
        self.users.iter().cloned().map(DenyEntry::User).chain(self.serials.iter().cloned().map(DenyEntry::Serial))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.users.len() + self.serials.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_format_reads_users_serials_and_comments() {
        let list =
            DenyList::parse("# lost cards\nuser 555000000002  # HR 1234\n\nserial 1f:A3:77 \nserial 00 80\n").unwrap();
        assert!(list.denies_user("555000000002"));
        assert!(!list.denies_user("555000000001"));
        assert!(list.denies_serial(&Serial::from_der_bytes(&[0x1f, 0xa3, 0x77]).unwrap()));
        assert!(list.denies_serial(&Serial::from_der_bytes(&[0x00, 0x80]).unwrap()));
        assert_eq!(list.len(), 3);
    }

    #[test]
    fn any_bad_line_refuses_the_file_with_its_line_number() {
        let err = DenyList::parse("user 555000000002\nuser 12345\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(DenyList::parse("serial xyz").is_err());
        assert!(DenyList::parse("badger 1").is_err());
    }
}
