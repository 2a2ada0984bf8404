//! Name rules shared by organizations, projects, environments, components and users.
//!
//! Names are DNS-label safe so they can become engine network names, Kubernetes namespaces and
//! host names: `^[a-z][a-z0-9-]*$`, at most 40 characters, no trailing hyphen, no `--`.

use thiserror::Error;

/// Longest allowed resource name.
pub const NAME_MAX_LEN: usize = 40;
/// Longest allowed display name.
pub const DISPLAY_NAME_MAX_LEN: usize = 100;
/// Longest allowed description.
pub const DESCRIPTION_MAX_LEN: usize = 1000;

/// A value broke one of the rules; `field` names the input field, `message` the rule.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: {message}")]
pub struct NameError {
    pub field: String,
    pub message: String,
}

impl NameError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Checks a resource name against `^[a-z][a-z0-9-]*$`, ≤ 40 chars, no trailing or double hyphen.
pub fn validate_name(field: &str, value: &str) -> Result<(), NameError> {
    let rule = "must match ^[a-z][a-z0-9-]*$ (lowercase letters, digits and '-', starting with a letter), at most 40 characters";
    if value.is_empty() {
        return Err(NameError::new(field, format!("is empty; it {rule}")));
    }
    if value.chars().count() > NAME_MAX_LEN {
        return Err(NameError::new(
            field,
            format!("is {} characters long; it {rule}", value.chars().count()),
        ));
    }
    let mut chars = value.chars();
    let first = chars.next().unwrap_or_default();
    if !first.is_ascii_lowercase() {
        return Err(NameError::new(
            field,
            format!("must start with a lowercase letter, not {first:?}; it {rule}"),
        ));
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(NameError::new(
            field,
            format!("contains {bad:?}; it {rule}"),
        ));
    }
    if value.ends_with('-') {
        return Err(NameError::new(field, "must not end with '-'"));
    }
    if value.contains("--") {
        return Err(NameError::new(field, "must not contain '--'"));
    }
    Ok(())
}

/// Display names: 1–100 characters, no control characters, not only whitespace.
pub fn validate_display_name(field: &str, value: &str) -> Result<(), NameError> {
    if value.trim().is_empty() {
        return Err(NameError::new(
            field,
            "must not be empty or only whitespace",
        ));
    }
    if value.chars().count() > DISPLAY_NAME_MAX_LEN {
        return Err(NameError::new(
            field,
            format!("must be at most {DISPLAY_NAME_MAX_LEN} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(NameError::new(field, "must not contain control characters"));
    }
    Ok(())
}

/// Descriptions: up to 1000 characters; newlines and tabs allowed, other control characters not.
pub fn validate_description(field: &str, value: &str) -> Result<(), NameError> {
    if value.chars().count() > DESCRIPTION_MAX_LEN {
        return Err(NameError::new(
            field,
            format!("must be at most {DESCRIPTION_MAX_LEN} characters"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(NameError::new(
            field,
            "must not contain control characters other than newline and tab",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_names() {
        for ok in ["a", "shop", "my-shop-2", "a1", &"a".repeat(40)] {
            assert_eq!(validate_name("name", ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn rejects_invalid_names_naming_the_rule() {
        let cases = [
            ("", "is empty"),
            ("Shop", "must start with a lowercase letter"),
            ("1shop", "must start with a lowercase letter"),
            ("-shop", "must start with a lowercase letter"),
            ("sh_op", "contains '_'"),
            ("shop.x", "contains '.'"),
            ("shöp", "contains 'ö'"),
            ("shop-", "must not end with '-'"),
            ("sh--op", "must not contain '--'"),
        ];
        for (input, expected) in cases {
            let err = validate_name("name", input).expect_err(input);
            assert_eq!(err.field, "name");
            assert!(
                err.message.contains(expected),
                "{input:?}: {} does not contain {expected:?}",
                err.message
            );
        }
        let long = "a".repeat(41);
        let err = validate_name("project", &long).unwrap_err();
        assert!(err.message.contains("41 characters"), "{}", err.message);
        assert_eq!(err.field, "project");
    }

    #[test]
    fn display_name_and_description_rules() {
        assert!(validate_display_name("displayName", "My Shop ✓").is_ok());
        assert!(validate_display_name("displayName", "  ").is_err());
        assert!(validate_display_name("displayName", "a\u{7}b").is_err());
        assert!(validate_display_name("displayName", &"x".repeat(101)).is_err());
        assert!(validate_description("description", "line 1\nline 2\tx").is_ok());
        assert!(validate_description("description", "").is_ok());
        assert!(validate_description("description", "a\u{0}").is_err());
        assert!(validate_description("description", &"x".repeat(1001)).is_err());
    }
}
