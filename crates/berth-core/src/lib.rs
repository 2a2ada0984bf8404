//! berth-core: the domain vocabulary of berth — names and their rules, roles, image references,
//! registry credentials from Docker config files, Choreo-compatible source configuration
//! (`endpoints.yaml`, `component.yaml`, `component-config.yaml`), and the wire models shared by the server and
//! the CLI (so both encode and decode the same shapes).
//!
//! This crate does no I/O: no tokio, no sockets, no files. Everything else depends on it; it
//! depends on nothing of ours.

pub mod api;
pub mod auto_deploy;
pub mod ci;
pub mod config;
pub mod cron;
pub mod docker_config;
pub mod endpoints;
pub mod names;
pub mod reference;
pub mod role;
pub mod secret;
pub mod task;
pub mod yaml;

pub use docker_config::{DockerConfigAuth, DockerConfigError, parse_docker_config};
pub use endpoints::{
    Endpoint, EndpointType, Issue, SourceConfigKind, ValidationReport, Visibility,
    detect_and_validate, validate_component_config_yaml, validate_component_yaml,
    validate_endpoints_yaml,
};
pub use names::{NameError, validate_description, validate_display_name, validate_name};
pub use reference::{ImageRef, ReferenceError};
pub use role::Role;
pub use secret::Secret;
