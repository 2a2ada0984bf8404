//! Parsing YAML that users send (endpoints and component files, OpenAPI schemas) with a bound on
//! what aliases make of it.
//!
//! An alias (`*name`) repeats its anchored node wherever it appears. serde_yaml_ng stops the
//! exponential form ("billion laughs") but not the quadratic one: a 100 KB document whose
//! second list names a 20,000-item anchored list 20,000 times expands to 400 million values and
//! takes the server's memory with it. [`parse`] first walks the document counting the values
//! it expands to, stopping at [`MAX_VALUES`], and only then builds it.

use std::cell::Cell;

use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, Visitor};

/// The most values (scalars, lists and mappings, aliases expanded) a document may hold: far
/// more than any real endpoints file or API schema (a 512 KiB OpenAPI document without aliases
/// has about 100,000), far less than the memory of a small server.
pub const MAX_VALUES: usize = 1_000_000;

/// Why a YAML document was not read.
#[derive(Debug)]
pub enum Error {
    /// Not YAML (or not the expected shape): the parser's error, with its location.
    Syntax(serde_yaml_ng::Error),
    /// Aliases expand it beyond [`MAX_VALUES`] values.
    TooLarge,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Syntax(e) => e.fmt(f),
            Self::TooLarge => write!(
                f,
                "the document expands to more than {MAX_VALUES} values through its aliases \
                 (`*name`); repeat less, or write the values out"
            ),
        }
    }
}

impl std::error::Error for Error {}

/// [`serde_yaml_ng::from_str`], refusing a document that expands to more than [`MAX_VALUES`]
/// values.
pub fn parse<T: DeserializeOwned>(text: &str) -> Result<T, Error> {
    parse_with_limit(text, MAX_VALUES)
}

fn parse_with_limit<T: DeserializeOwned>(text: &str, max: usize) -> Result<T, Error> {
    let seen = Cell::new(0);
    let count = Count { seen: &seen, max };
    // A syntax error stops the count as it stops the real parse below, which reports it.
    let _ = count.deserialize(serde_yaml_ng::Deserializer::from_str(text));
    if seen.get() > max {
        return Err(Error::TooLarge);
    }
    serde_yaml_ng::from_str(text).map_err(Error::Syntax)
}

/// Counts the values it is shown (any type, aliases replayed by the deserializer) and fails
/// once there are more than `max`.
#[derive(Clone, Copy)]
struct Count<'a> {
    seen: &'a Cell<usize>,
    max: usize,
}

impl Count<'_> {
    fn bump<E: de::Error>(self) -> Result<(), E> {
        let n = self.seen.get() + 1;
        self.seen.set(n);
        if n > self.max {
            return Err(E::custom("too many values"));
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Count<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Count<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.bump()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.bump()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.bump()
    }
    fn visit_i128<E: de::Error>(self, _: i128) -> Result<(), E> {
        self.bump()
    }
    fn visit_u128<E: de::Error>(self, _: u128) -> Result<(), E> {
        self.bump()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.bump()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.bump()
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<(), E> {
        self.bump()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.bump()
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.bump()
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.bump()?;
        self.deserialize(d)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.bump()?;
        self.deserialize(d)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.bump()?;
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.bump()?;
        while map.next_key_seed(self)?.is_some() {
            map.next_value_seed(self)?;
        }
        Ok(())
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        // A tagged value (`!Tag value`): the tag, then its value.
        self.bump()?;
        let ((), variant) = data.variant_seed(self)?;
        de::VariantAccess::newtype_variant_seed(variant, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_yaml_ng::Value;

    /// `a` anchors a list of `n` items, `b` names it `n` times: n² values once expanded.
    fn quadratic(n: usize) -> String {
        let items = vec!["0"; n].join(",");
        let aliases = vec!["*a"; n].join(",");
        format!("a: &a [{items}]\nb: [{aliases}]\n")
    }

    #[test]
    fn a_quadratic_alias_expansion_is_refused_before_it_is_built() {
        // 20,000² = 400 million values from 140 KB: refused, and quickly (the count stops at
        // the limit).
        let text = quadratic(20_000);
        let started = std::time::Instant::now();
        let err = parse::<Value>(&text).unwrap_err();
        assert!(matches!(err, Error::TooLarge), "{err}");
        assert!(err.to_string().contains("aliases"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        // The limit itself: 30² + 30 + 3 values (two lists, the mapping, two keys) fit in 1,000.
        let small = quadratic(30);
        assert!(parse_with_limit::<Value>(&small, 1_000).is_ok());
        assert!(matches!(
            parse_with_limit::<Value>(&small, 900),
            Err(Error::TooLarge)
        ));
    }

    #[test]
    fn ordinary_documents_and_syntax_errors_are_as_before() {
        let v: Value = parse("x: &x {a: 1}\ny: *x\nz: !Tag [1, 2]\n").unwrap();
        assert_eq!(v["y"]["a"], Value::from(1));
        let err = parse::<Value>("a: [1, 2\n").unwrap_err();
        assert!(matches!(err, Error::Syntax(_)), "{err}");
        assert!(err.to_string().contains("line"), "{err}");
        // Typed targets work too.
        let n: std::collections::BTreeMap<String, u32> = parse("a: 1\nb: 2\n").unwrap();
        assert_eq!(n["b"], 2);
    }
}
