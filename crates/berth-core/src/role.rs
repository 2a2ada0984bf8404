//! Roles and what they may do.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A user's role. Roles are ordered: admin ⊇ developer ⊇ viewer.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Reads everything.
    Viewer,
    /// Reads everything; creates, changes and deploys projects, components and their settings.
    Developer,
    /// Everything, including organizations, users, API tokens and the audit log.
    Admin,
}

/// The kinds of action the API guards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Any read of organization resources.
    Read,
    /// Create/update/delete of projects, components, deployments, configs.
    Write,
    /// Organizations, users, API tokens, audit log.
    Administer,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::Developer, Role::Viewer];

    /// Whether this role may perform `action`.
    pub fn allows(self, action: Action) -> bool {
        match action {
            Action::Read => true,
            Action::Write => self >= Role::Developer,
            Action::Administer => self == Role::Admin,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Developer => "developer",
            Role::Viewer => "viewer",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Role::Admin),
            "developer" => Ok(Role::Developer),
            "viewer" => Ok(Role::Viewer),
            other => Err(format!(
                "unknown role {other:?}; expected one of admin, developer, viewer"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_matrix() {
        let table = [
            (Role::Viewer, [true, false, false]),
            (Role::Developer, [true, true, false]),
            (Role::Admin, [true, true, true]),
        ];
        for (role, expected) in table {
            let got = [
                role.allows(Action::Read),
                role.allows(Action::Write),
                role.allows(Action::Administer),
            ];
            assert_eq!(got, expected, "{role}");
        }
    }

    #[test]
    fn parse_roundtrip() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!(
            "root"
                .parse::<Role>()
                .unwrap_err()
                .contains("admin, developer, viewer")
        );
    }
}
