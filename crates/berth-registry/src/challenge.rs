//! `WWW-Authenticate` parsing (RFC 9110 §11.6.1): several challenges per header, parameters
//! as tokens or quoted strings (which may hold commas and escaped quotes).

use std::collections::BTreeMap;

/// One authentication challenge, e.g. `Bearer realm="…",service="…",scope="…"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Lowercased scheme: `basic`, `bearer`, …
    pub scheme: String,
    /// Parameters with lowercased names.
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

struct Cursor<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<char> {
        self.s[self.i..].chars().next()
    }
    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.i += 1;
        }
    }
    fn skip_ws_commas(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | ',')) {
            self.i += 1;
        }
    }
    fn token(&mut self) -> &'a str {
        let start = self.i;
        while self.peek().is_some_and(is_tchar) {
            self.i += 1;
        }
        &self.s[start..self.i]
    }
    /// A token68 value (base64-ish, may end in `=`), used by some schemes instead of params.
    fn token68_rest(&mut self) -> &'a str {
        let start = self.i;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || "-._~+/=".contains(c))
        {
            self.i += 1;
        }
        &self.s[start..self.i]
    }
    fn quoted(&mut self) -> String {
        // Opening quote already checked by the caller.
        self.i += 1;
        let mut out = String::new();
        while let Some(c) = self.peek() {
            self.i += c.len_utf8();
            match c {
                '"' => return out,
                '\\' => {
                    if let Some(n) = self.peek() {
                        self.i += n.len_utf8();
                        out.push(n);
                    }
                }
                c => out.push(c),
            }
        }
        out // unterminated: keep what we have
    }
}

/// Parses one `WWW-Authenticate` header value into its challenges. Never fails: malformed
/// parts are skipped, since a registry's header is input we do not control.
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut cur = Cursor { s: header, i: 0 };
    let mut out: Vec<Challenge> = Vec::new();
    loop {
        cur.skip_ws_commas();
        if cur.peek().is_none() {
            break;
        }
        let scheme = cur.token();
        if scheme.is_empty() {
            // Not a token: skip one char to guarantee progress.
            cur.i += cur.peek().map_or(1, char::len_utf8);
            continue;
        }
        let mut challenge = Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params: BTreeMap::new(),
        };
        cur.skip_ws();
        // Parameters until the next token that is not followed by '=' (a new scheme).
        loop {
            cur.skip_ws_commas();
            let save = cur.i;
            let name = cur.token();
            if name.is_empty() {
                // token68 form, e.g. `Negotiate abc==`. Anything else (a stray `"`, a control
                // character) ends the challenge; the outer loop skips it. Continuing without
                // consuming would loop forever.
                if challenge.params.is_empty() && !cur.token68_rest().is_empty() {
                    continue;
                }
                break;
            }
            cur.skip_ws();
            if cur.peek() != Some('=') {
                // The token is the next challenge's scheme (or a token68 value).
                if challenge.params.is_empty() && is_token68_follow(&cur) {
                    continue;
                }
                cur.i = save;
                break;
            }
            cur.i += 1;
            cur.skip_ws();
            // `abc==` token68: '=' followed by '=' or end/comma means padding, not a param.
            if matches!(cur.peek(), Some('=') | Some(',') | None) && challenge.params.is_empty() {
                while cur.peek() == Some('=') {
                    cur.i += 1;
                }
                continue;
            }
            let value = if cur.peek() == Some('"') {
                cur.quoted()
            } else {
                cur.token().to_owned()
            };
            challenge.params.insert(name.to_ascii_lowercase(), value);
        }
        out.push(challenge);
    }
    out
}

fn is_token68_follow(cur: &Cursor<'_>) -> bool {
    // After a bare token with no '=': only a token68 if nothing else follows before a comma.
    let rest = cur.s[cur.i..].trim_start();
    rest.is_empty() || rest.starts_with(',')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(h: &str) -> Challenge {
        let mut v = parse_challenges(h);
        assert_eq!(v.len(), 1, "{h}: {v:?}");
        v.remove(0)
    }

    #[test]
    fn bearer_with_scope_containing_commas() {
        let c = one(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull,push""#,
        );
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c.param("service"), Some("registry.docker.io"));
        assert_eq!(c.param("scope"), Some("repository:library/nginx:pull,push"));
    }

    #[test]
    fn basic_and_case_and_spacing() {
        let c = one(r#"Basic realm="berth-registry""#);
        assert_eq!(c.scheme, "basic");
        assert_eq!(c.param("realm"), Some("berth-registry"));
        let c = one(r#"BEARER  Realm = "x" , Service=svc"#);
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.param("realm"), Some("x"));
        assert_eq!(c.param("service"), Some("svc"));
    }

    #[test]
    fn several_challenges_and_escapes() {
        let v = parse_challenges(
            r#"Bearer realm="a\"b",error="invalid_token", Basic realm="r, with comma""#,
        );
        assert_eq!(v.len(), 2, "{v:?}");
        assert_eq!(v[0].param("realm"), Some("a\"b"));
        assert_eq!(v[0].param("error"), Some("invalid_token"));
        assert_eq!(v[1].scheme, "basic");
        assert_eq!(v[1].param("realm"), Some("r, with comma"));
    }

    #[test]
    fn a_character_that_starts_nothing_after_a_scheme_does_not_hang() {
        // Found by the www_authenticate fuzz target: these looped forever.
        for h in [
            "Newauth realm=\"apps\", type=1, title=\"Login to \\\"apps\\\"\", B\u{17}sic realm=\"simple\"",
            "Bearer \"",
            "Bearer @",
            "Basic ü realm=x",
        ] {
            let (tx, rx) = std::sync::mpsc::channel();
            let input = h.to_owned();
            std::thread::spawn(move || tx.send(parse_challenges(&input)).unwrap());
            let v = rx
                .recv_timeout(std::time::Duration::from_secs(5))
                .unwrap_or_else(|_| panic!("parse_challenges({h:?}) did not return"));
            assert!(!v.is_empty(), "{h:?}");
        }
        let v = parse_challenges("Bearer @, Basic realm=\"r\"");
        assert_eq!(v.len(), 2, "{v:?}");
        assert_eq!(v[0].scheme, "bearer");
        assert_eq!(v[1].param("realm"), Some("r"));
    }

    #[test]
    fn token68_and_garbage_do_not_panic() {
        let v = parse_challenges("Negotiate abc==, Basic realm=x");
        assert_eq!(v.len(), 2, "{v:?}");
        assert_eq!(v[1].param("realm"), Some("x"));
        for h in [
            "",
            ",,,",
            "=",
            "\"",
            "Bearer realm=\"unterminated",
            "Bearer ,,=,",
            "ü",
        ] {
            let _ = parse_challenges(h);
        }
        assert_eq!(
            one("Bearer realm=\"unterminated").param("realm"),
            Some("unterminated")
        );
    }
}
