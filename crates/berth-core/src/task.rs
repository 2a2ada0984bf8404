//! Rules for task runs: arguments, environment overrides and the shell-like splitting the CLI
//! applies to `--args "a 'b c'"`.
//!
//! Arguments are appended after the image's ENTRYPOINT and CMD: the container runs
//! `ENTRYPOINT… CMD… args…`. No shell is involved on the server: each argument reaches the
//! process as one argv entry, byte for byte.

use crate::NameError;
use crate::config::{ENV_VALUE_MAX, validate_env_name};

/// Most arguments per run.
pub const ARGS_MAX: usize = 256;
/// Most bytes of all arguments together.
pub const ARGS_BYTES_MAX: usize = 64 * 1024;
/// Most environment overrides per run.
pub const ENV_OVERRIDES_MAX: usize = 100;
/// Logs kept per execution (the newest output wins).
pub const LOG_LIMIT: usize = 10 * 1024 * 1024;

/// Checks a run's arguments: at most [`ARGS_MAX`], [`ARGS_BYTES_MAX`] bytes, no NUL.
pub fn validate_args(field: &str, args: &[String]) -> Result<(), NameError> {
    if args.len() > ARGS_MAX {
        return Err(NameError::new(
            field,
            format!(
                "has {} arguments; at most {ARGS_MAX} are allowed",
                args.len()
            ),
        ));
    }
    let total: usize = args.iter().map(String::len).sum();
    if total > ARGS_BYTES_MAX {
        return Err(NameError::new(
            field,
            format!("is {total} bytes; at most {ARGS_BYTES_MAX} bytes are allowed"),
        ));
    }
    if let Some(i) = args.iter().position(|a| a.contains('\0')) {
        return Err(NameError::new(
            format!("{field}[{i}]"),
            "must not contain NUL characters",
        ));
    }
    Ok(())
}

/// Checks one environment override (`field` is its JSON path, e.g. `envOverrides[2]`).
pub fn validate_env_override(field: &str, name: &str, value: &str) -> Result<(), NameError> {
    validate_env_name(&format!("{field}.name"), name)?;
    if value.len() > ENV_VALUE_MAX {
        return Err(NameError::new(
            format!("{field}.value"),
            format!(
                "is {} bytes; variables are at most {ENV_VALUE_MAX} bytes",
                value.len()
            ),
        ));
    }
    if value.contains('\0') {
        return Err(NameError::new(
            format!("{field}.value"),
            "must not contain NUL characters",
        ));
    }
    Ok(())
}

/// Splits a command line into arguments the way a POSIX shell splits words, without any
/// expansion:
///
/// - unquoted whitespace (space, tab, newline) separates arguments;
/// - `'…'` keeps everything inside literally (no escapes);
/// - `"…"` keeps everything inside literally except `\"` and `\\` (→ `"` and `\`); other
///   backslashes stay;
/// - outside quotes, `\x` is `x` (so `\ ` is a space inside an argument);
/// - quoted and unquoted parts next to each other form one argument (`a'b c'` → `ab c`), and
///   `''` or `""` is an empty argument;
/// - `$`, `*`, `~`, `;`, `|` … have no special meaning.
///
/// An unterminated quote or a trailing backslash is an error naming `field`.
pub fn split_args(field: &str, line: &str) -> Result<Vec<String>, NameError> {
    let mut out = Vec::new();
    let mut current = String::new();
    // Whether a word has started (so `''` yields an empty argument).
    let mut in_word = false;
    let mut chars = line.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                if in_word {
                    out.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some((_, '\'')) => break,
                        Some((_, ch)) => current.push(ch),
                        None => {
                            return Err(NameError::new(
                                field,
                                format!(
                                    "unterminated single quote starting at character {}",
                                    i + 1
                                ),
                            ));
                        }
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some((_, '"')) => break,
                        Some((_, '\\')) => match chars.peek() {
                            Some(&(_, next @ ('"' | '\\'))) => {
                                current.push(next);
                                chars.next();
                            }
                            _ => current.push('\\'),
                        },
                        Some((_, ch)) => current.push(ch),
                        None => {
                            return Err(NameError::new(
                                field,
                                format!(
                                    "unterminated double quote starting at character {}",
                                    i + 1
                                ),
                            ));
                        }
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some((_, ch)) => current.push(ch),
                    None => {
                        return Err(NameError::new(
                            field,
                            "ends with a lone backslash (write \\\\ for a backslash)",
                        ));
                    }
                }
            }
            other => {
                in_word = true;
                current.push(other);
            }
        }
    }
    if in_word {
        out.push(current);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_a_shell_without_expansion() {
        let cases: &[(&str, &[&str])] = &[
            ("", &[]),
            ("   ", &[]),
            ("a b", &["a", "b"]),
            ("  a \t b\n", &["a", "b"]),
            ("a 'b c'", &["a", "b c"]),
            ("\"b c\" d", &["b c", "d"]),
            ("'it''s'", &["its"]),
            ("\"it's\"", &["it's"]),
            ("'say \"hi\"'", &["say \"hi\""]),
            ("\"a \\\"q\\\" \\\\ \\n\"", &["a \"q\" \\ \\n"]),
            ("a\\ b c", &["a b", "c"]),
            ("x'y z'w", &["xy zw"]),
            ("'' \"\" a", &["", "", "a"]),
            ("$HOME * ~ ; |", &["$HOME", "*", "~", ";", "|"]),
            (
                "--name=value 'multi\nline'",
                &["--name=value", "multi\nline"],
            ),
            ("ünï 'cödé'", &["ünï", "cödé"]),
        ];
        for (line, want) in cases {
            let got = split_args("args", line).unwrap();
            assert_eq!(got, *want, "{line:?}");
        }
    }

    #[test]
    fn split_errors() {
        let e = split_args("args", "a 'b").unwrap_err();
        assert_eq!(e.field, "args");
        assert!(
            e.message
                .contains("unterminated single quote starting at character 3")
        );
        assert!(
            split_args("args", "\"x")
                .unwrap_err()
                .message
                .contains("double quote")
        );
        assert!(
            split_args("args", "a\\")
                .unwrap_err()
                .message
                .contains("backslash")
        );
    }

    #[test]
    fn limits() {
        assert!(validate_args("args", &["a".into()]).is_ok());
        let many = vec!["x".to_owned(); ARGS_MAX + 1];
        assert!(validate_args("args", &many).is_err());
        let big = vec!["x".repeat(ARGS_BYTES_MAX + 1)];
        assert!(validate_args("args", &big).is_err());
        let e = validate_args("args", &["ok".into(), "a\0b".into()]).unwrap_err();
        assert_eq!(e.field, "args[1]");
        assert!(validate_env_override("envOverrides[0]", "GOOD_NAME", "v").is_ok());
        assert_eq!(
            validate_env_override("envOverrides[0]", "1BAD", "v")
                .unwrap_err()
                .field,
            "envOverrides[0].name"
        );
        assert_eq!(
            validate_env_override("envOverrides[1]", "A", "x\0")
                .unwrap_err()
                .field,
            "envOverrides[1].value"
        );
    }
}
