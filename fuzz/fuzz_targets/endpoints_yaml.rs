//! Validates arbitrary UTF-8 as each kind of source configuration (`endpoints.yaml`,
//! `component.yaml`, `component-config.yaml`) and through content detection. The validators
//! must never panic; endpoints come back only from a valid file, and each has a name, a port
//! in 1001–65534, at least one visibility and a context starting with `/`.

#![no_main]

use std::collections::BTreeSet;

use berth_core::endpoints::{
    detect_and_validate, validate_component_config_yaml, validate_component_yaml,
    validate_endpoints_yaml,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| {
    let schemas: BTreeSet<String> = ["openapi.yaml".to_owned(), "api/schema.graphql".to_owned()]
        .into_iter()
        .collect();
    for (report, endpoints) in [
        validate_endpoints_yaml(input, &schemas),
        validate_component_yaml(input, &schemas),
        validate_component_config_yaml(input, &schemas),
        detect_and_validate("unknown.yaml", input, &schemas),
    ] {
        if !report.valid {
            assert!(
                endpoints.is_empty(),
                "{input:?}: endpoints from an invalid file"
            );
            assert!(
                !report.errors.is_empty(),
                "{input:?}: invalid without an error"
            );
            continue;
        }
        for e in &endpoints {
            assert!(!e.name.is_empty(), "{input:?}: {e:?}");
            assert!((1001..=65534).contains(&e.port), "{input:?}: {e:?}");
            assert!(!e.visibilities.is_empty(), "{input:?}: {e:?}");
            assert!(e.context.starts_with('/'), "{input:?}: {e:?}");
        }
    }
});
