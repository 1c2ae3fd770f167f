//! JSON for untrusted token parts: duplicate object members are refused at every depth (two
//! parsers of one token could otherwise disagree about what it says), and numbers are kept as
//! `serde_json` reads them.
//!
//! The document is read into [`Json`], which borrows its strings from the input where no escape
//! forces a copy and keeps each object's members in one vector: a token's payload is read on
//! every cache miss, and a tree of owned maps and strings cost more than the rest of the claims
//! check together (see `benches/verify.rs`).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON value borrowing from the document it was read from.
#[derive(Clone, Debug, PartialEq)]
pub enum Json<'a> {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as `serde_json` reads it.
    Number(serde_json::Number),
    /// A string.
    String(Cow<'a, str>),
    /// An array.
    Array(Vec<Json<'a>>),
    /// An object without duplicate members, in document order.
    Object(Object<'a>),
}

/// An object's members, in document order, each name once.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Object<'a>(Vec<(Cow<'a, str>, Json<'a>)>);

impl<'a> Object<'a> {
    /// The member called `name`.
    pub fn get(&self, name: &str) -> Option<&Json<'a>> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// Whether there is a member called `name`.
    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The members.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Json<'a>)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v))
    }
}

impl<'a> Json<'a> {
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number as a `u64`, if it is a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Json::Number(n) => n.as_u64(),
            _ => None,
        }
    }

    /// The number as an `f64`, if this is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Json::Number(n) => n.as_f64(),
            _ => None,
        }
    }

    /// The elements, if this is an array.
    pub fn as_array(&self) -> Option<&[Json<'a>]> {
        match self {
            Json::Array(list) => Some(list),
            _ => None,
        }
    }

    /// The members, if this is an object.
    pub fn as_object(&self) -> Option<&Object<'a>> {
        match self {
            Json::Object(o) => Some(o),
            _ => None,
        }
    }

    /// Whether this is an object.
    pub fn is_object(&self) -> bool {
        matches!(self, Json::Object(_))
    }

    /// The member called `name`, if this is an object that has it.
    pub fn get(&self, name: &str) -> Option<&Json<'a>> {
        self.as_object().and_then(|o| o.get(name))
    }
}

/// Parses `bytes` as one JSON value, refusing duplicate members and trailing data.
pub fn parse_strict(bytes: &[u8]) -> Result<Json<'_>, String> {
    // UTF-8 checked once for the whole document, not string by string.
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    let mut de = serde_json::Deserializer::from_str(text);
    let value = <Json<'_> as de::Deserialize>::deserialize(&mut de).map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    Ok(value)
}

impl<'de> de::Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        serde_json::Number::from_f64(v).map(Json::Number).ok_or_else(|| E::custom("not a finite number"))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Json::String(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Json::String(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Json::String(Cow::Owned(v)))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(v) = seq.next_element()? {
            out.push(v);
        }
        Ok(Json::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        // Room for a typical claims object or role profile without regrowing.
        let mut members: Vec<(Cow<'de, str>, Json<'de>)> = Vec::with_capacity(16);
        while let Some(Key(key)) = map.next_key()? {
            let value = map.next_value()?;
            members.push((key, value));
        }
        if let Some(dup) = duplicate(&members) {
            return Err(de::Error::custom(format!("duplicate member {dup:?}")));
        }
        Ok(Json::Object(Object(members)))
    }
}

/// A repeated member name: pairwise for the small objects tokens have, sorted beyond that so a
/// hostile object of thousands of members costs n log n, not n².
fn duplicate<'m>(members: &'m [(Cow<'_, str>, Json<'_>)]) -> Option<&'m str> {
    if members.len() <= 16 {
        members
            .iter()
            .enumerate()
            .find_map(|(i, (k, _))| members[..i].iter().any(|(p, _)| p == k).then_some(k.as_ref()))
    } else {
        let mut names: Vec<&str> = members.iter().map(|(k, _)| k.as_ref()).collect();
        names.sort_unstable();
        names.windows(2).find(|w| w[0] == w[1]).map(|w| w[0])
    }
}

/// A member name, borrowed from the document unless an escape forces a copy (serde's own
/// `Cow<str>` always copies).
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_members_are_refused_at_any_depth() {
        assert!(parse_strict(br#"{"alg":"RS256","alg":"none"}"#).is_err());
        assert!(parse_strict(br#"{"a":{"b":1,"b":2}}"#).is_err());
        assert!(parse_strict(br#"[{"x":1},{"x":1,"x":1}]"#).is_err());
        assert_eq!(
            parse_strict(br#"{"a":[1,{"b":"c"}],"n":1.5}"#).unwrap().get("a").unwrap().as_array().unwrap()[1]
                .get("b")
                .unwrap()
                .as_str(),
            Some("c")
        );
    }

    #[test]
    fn escaped_names_are_compared_by_what_they_mean() {
        // "\u0061lg" is "alg": a second alg however spelled is a duplicate.
        assert!(parse_strict(br#"{"alg":"RS256","\u0061lg":"none"}"#).is_err());
        let v = parse_strict(br#"{"s":"a\"b","t":"plain"}"#).unwrap();
        assert_eq!(v.get("s").unwrap().as_str(), Some("a\"b"));
        assert!(matches!(v.get("t"), Some(Json::String(Cow::Borrowed("plain")))), "unescaped strings are borrowed");
    }

    #[test]
    fn large_objects_are_checked_too() {
        let members: Vec<String> = (0..500).map(|i| format!("\"m{i}\":{i}")).collect();
        let ok = format!("{{{}}}", members.join(","));
        assert_eq!(parse_strict(ok.as_bytes()).unwrap().as_object().unwrap().iter().count(), 500);
        let dup = format!("{{{},\"m250\":0}}", members.join(","));
        assert!(parse_strict(dup.as_bytes()).unwrap_err().contains("duplicate member \"m250\""));
    }

    #[test]
    fn trailing_data_is_refused() {
        assert!(parse_strict(br#"{"a":1} {"a":2}"#).is_err());
    }
}
