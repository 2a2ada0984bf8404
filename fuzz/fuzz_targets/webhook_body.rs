//! Deserializes arbitrary bytes as the deploy webhook's body (`CiDeployRequest`) and runs the
//! checks the server makes before touching the store or a registry: the idempotency key, and
//! exactly one of image (same repository as the component's), tag or digest. Nothing may
//! panic, and whatever passes must be well-formed.

#![no_main]

use berth_core::api::CiDeployRequest;
use berth_core::ci::{same_repository, validate_idempotency_key};
use berth_core::reference::{ImageRef, validate_digest, validate_tag};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Ok(body) = serde_json::from_slice::<CiDeployRequest>(input) else {
        return;
    };
    if let Some(key) = &body.idempotency_key
        && validate_idempotency_key(key).is_ok()
    {
        assert!(!key.is_empty() && key.len() <= 255 && key.bytes().all(|b| b.is_ascii_graphic()));
    }
    let current = ImageRef::parse("registry.example.com:5000/shop/web:v1").unwrap();
    match (&body.image, &body.tag, &body.digest) {
        (Some(image), None, None) => {
            if let Ok(requested) = ImageRef::parse(image)
                && same_repository(&current, &requested)
            {
                // Host names compare without case (DNS); the repository path exactly.
                assert!(
                    requested.name().eq_ignore_ascii_case(&current.name())
                        && requested.path() == current.path(),
                    "{image:?}"
                );
            }
        }
        (None, Some(tag), None) if validate_tag(tag).is_ok() => {
            let image = format!("{}:{tag}", current.name());
            let parsed = ImageRef::parse(&image).expect("a valid tag makes a valid reference");
            assert!(same_repository(&current, &parsed), "{image:?}");
        }
        (None, None, Some(digest)) if validate_digest(digest).is_ok() => {
            let image = format!("{}@{digest}", current.name());
            let parsed = ImageRef::parse(&image).expect("a valid digest makes a valid reference");
            assert!(same_repository(&current, &parsed), "{image:?}");
        }
        _ => {}
    }
    // The body the server hashes for idempotency serializes.
    serde_json::to_string(&body).expect("a parsed body serializes");
});
