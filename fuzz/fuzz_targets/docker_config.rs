//! Parses arbitrary UTF-8 as a Docker config JSON. It must never panic, and an accepted config
//! must have a valid canonical host and non-empty credentials.

#![no_main]

use berth_core::docker_config::parse_docker_config;
use berth_core::reference::{canonical_registry_host, validate_registry_host};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| {
    let Ok(auth) = parse_docker_config(input) else {
        return;
    };
    assert_eq!(
        validate_registry_host(&auth.host),
        Ok(()),
        "{:?}",
        auth.host
    );
    assert_eq!(canonical_registry_host(&auth.host), auth.host);
    assert!(!auth.username.is_empty() && !auth.username.contains(':'));
    assert!(!auth.password.expose().is_empty());
});
