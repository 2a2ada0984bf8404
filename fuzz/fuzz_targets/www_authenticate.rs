//! Parses arbitrary UTF-8 as a `WWW-Authenticate` header value. The parser must never panic;
//! every challenge it finds has a non-empty token scheme, and parameter names are lowercase.

#![no_main]

use berth_registry::parse_challenges;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| {
    for c in parse_challenges(input) {
        assert!(!c.scheme.is_empty(), "{input:?}: {c:?}");
        assert!(!c.scheme.contains([' ', ',', '"', '=']), "{input:?}: {c:?}");
        assert_eq!(c.scheme, c.scheme.to_ascii_lowercase(), "{input:?}");
        for name in c.params.keys() {
            assert!(!name.is_empty(), "{input:?}: {c:?}");
            assert_eq!(*name, name.to_ascii_lowercase(), "{input:?}");
        }
    }
});
