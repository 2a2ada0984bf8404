//! Parses arbitrary UTF-8 as an image reference. The parser must never panic, and whatever it
//! accepts must print as strings that parse back to the same value.

#![no_main]

use berth_core::reference::{ImageRef, validate_registry_host};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| {
    let _ = validate_registry_host(input);
    let Ok(reference) = ImageRef::parse(input) else {
        return;
    };
    let printed = reference.to_string();
    assert_eq!(
        ImageRef::parse(&printed).as_ref(),
        Ok(&reference),
        "{input:?} -> {printed:?}"
    );
    let familiar = reference.familiar();
    assert_eq!(
        ImageRef::parse(&familiar).as_ref(),
        Ok(&reference),
        "{input:?} -> {familiar:?}"
    );
    let pulled = ImageRef::parse(&reference.pull_reference()).map(|p| p.name());
    assert_eq!(pulled, Ok(reference.name()), "{input:?}");
});
