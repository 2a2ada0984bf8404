//! External CI: the rules of the deploy webhook that need no I/O (which references a component's
//! CI token may deploy, idempotency keys) and the ready-to-paste snippets for curl, GitHub
//! Actions and GitLab CI.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::reference::{ImageRef, canonical_registry_host};

/// What a snippet is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SnippetKind {
    /// A POSIX shell script using curl: post, then wait for the outcome.
    Curl,
    /// A GitHub Actions workflow: build, push, deploy, wait.
    GithubActions,
    /// A GitLab CI pipeline: build, push, deploy, wait.
    GitlabCi,
}

impl SnippetKind {
    pub const ALL: [SnippetKind; 3] = [Self::Curl, Self::GithubActions, Self::GitlabCi];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Curl => "curl",
            Self::GithubActions => "github-actions",
            Self::GitlabCi => "gitlab-ci",
        }
    }
}

impl std::str::FromStr for SnippetKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown snippet kind {s:?}; expected one of curl, github-actions, gitlab-ci"
                )
            })
    }
}

/// Whether `requested` is in the same repository as `current` (the component's image): same
/// registry (Docker Hub under any of its names) and the same repository path.
pub fn same_repository(current: &ImageRef, requested: &ImageRef) -> bool {
    current.registry_host() == requested.registry_host() && current.path() == requested.path()
}

/// Longest idempotency key accepted.
pub const IDEMPOTENCY_KEY_MAX: usize = 255;

/// An idempotency key is 1–255 visible ASCII characters (a UUID, a CI run id, a commit SHA).
pub fn validate_idempotency_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("must not be empty; omit it to deploy without idempotency".into());
    }
    if key.len() > IDEMPOTENCY_KEY_MAX {
        return Err(format!(
            "is {} characters; at most {IDEMPOTENCY_KEY_MAX} are allowed",
            key.len()
        ));
    }
    if let Some(c) = key.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(format!(
            "contains {c:?}; use visible ASCII characters only (e.g. a UUID or a CI run id)"
        ));
    }
    Ok(())
}

/// What a snippet needs to know.
#[derive(Debug, Clone)]
pub struct SnippetTarget<'a> {
    /// Absolute URL of the deploy webhook.
    pub webhook_url: &'a str,
    pub org: &'a str,
    pub project: &'a str,
    pub component: &'a str,
    /// The component's current image (its repository is where CI pushes).
    pub image: &'a ImageRef,
}

/// The poll interval and the number of polls of the wait loop (10 minutes in all).
const POLL_SECONDS: u32 = 3;
const POLLS: u32 = 200;

/// The shell part shared by every snippet: post `$IMAGE`, then poll the status URL until the
/// deployment is final; exit 0 only when it is `ready`. POSIX sh + curl + sed, no jq: it runs
/// in any CI image that has curl.
fn script_body(webhook_url: &str) -> String {
    format!(
        r#"answer=$(curl -sS --fail-with-body -X POST "{webhook_url}" \
  -H "Authorization: Bearer $BERTH_TOKEN" \
  -H "Content-Type: application/json" \
  -d "{{\"image\":\"$IMAGE\"}}") || {{ echo "berth refused the deploy: $answer" >&2; exit 1; }}
echo "$answer"
status_url=$(printf '%s' "$answer" | sed -n 's/.*"statusUrl":"\([^"]*\)".*/\1/p')
[ -n "$status_url" ] || {{ echo "no statusUrl in berth's answer" >&2; exit 1; }}
i=0
while [ "$i" -lt {POLLS} ]; do
  deployment=$(curl -sS --fail-with-body -H "Authorization: Bearer $BERTH_TOKEN" "$status_url") \
    || {{ echo "reading the deployment status failed: $deployment" >&2; exit 1; }}
  status=$(printf '%s' "$deployment" | sed -n 's/.*"status":"\([^"]*\)".*/\1/p')
  echo "deployment status: $status"
  case "$status" in
    ready) exit 0 ;;
    failed|rolled-back|superseded) echo "$deployment" >&2; exit 1 ;;
  esac
  i=$((i + 1))
  sleep {POLL_SECONDS}
done
echo "gave up waiting for the deployment after 10 minutes" >&2
exit 1
"#
    )
}

fn indent(text: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    text.lines()
        .map(|l| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{pad}{l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Renders a ready-to-paste snippet. The token is never in it: it is read from the CI secret
/// `BERTH_TOKEN` (`${{ secrets.BERTH_TOKEN }}` on GitHub, a masked `$BERTH_TOKEN` variable on
/// GitLab, the environment for curl).
pub fn render_snippet(kind: SnippetKind, t: &SnippetTarget<'_>) -> String {
    let repository = t.image.name();
    let host = canonical_registry_host(t.image.domain());
    let path = format!("{}/{}/{}", t.org, t.project, t.component);
    let body = script_body(t.webhook_url);
    match kind {
        SnippetKind::Curl => format!(
            r#"#!/bin/sh
# Deploys an image of {path} to its first environment through berth's deploy webhook,
# then waits for the outcome (exit 0 only when the deployment is ready).
#   BERTH_TOKEN  a CI token of this component (berth ci token create), kept as a CI secret
#   IMAGE        the image CI pushed, in {repository}
# Usage: BERTH_TOKEN=... IMAGE={repository}:v2 sh deploy.sh
set -eu
: "${{BERTH_TOKEN:?set BERTH_TOKEN to a CI token of {path}}}"
: "${{IMAGE:?set IMAGE to the image CI pushed, e.g. {repository}:v2}}"
{body}"#
        ),
        SnippetKind::GithubActions => format!(
            r#"# .github/workflows/berth-deploy.yml: build and push the image, then deploy it to
# {path} through berth's deploy webhook and wait for the outcome.
# Repository secrets: BERTH_TOKEN (berth ci token create --project {project} --component {component} --name github),
# REGISTRY_USERNAME and REGISTRY_PASSWORD (push access to {host}).
name: berth-deploy
on:
  push:
    branches: [main]
jobs:
  deploy:
    runs-on: ubuntu-latest
    env:
      IMAGE: {repository}:${{{{ github.sha }}}}
    steps:
      - uses: actions/checkout@v4
      - uses: docker/login-action@v3
        with:
          registry: {host}
          username: ${{{{ secrets.REGISTRY_USERNAME }}}}
          password: ${{{{ secrets.REGISTRY_PASSWORD }}}}
      - uses: docker/build-push-action@v6
        with:
          push: true
          tags: ${{{{ env.IMAGE }}}}
      - name: Deploy with berth
        env:
          BERTH_TOKEN: ${{{{ secrets.BERTH_TOKEN }}}}
        run: |
{run}
"#,
            project = t.project,
            component = t.component,
            run = indent(&format!("set -eu\n{body}"), 10),
        ),
        SnippetKind::GitlabCi => format!(
            r#"# .gitlab-ci.yml: build and push the image, then deploy it to {path} through berth's
# deploy webhook and wait for the outcome.
# CI/CD variables (masked): BERTH_TOKEN (berth ci token create --project {project} --component {component} --name gitlab),
# REGISTRY_USERNAME and REGISTRY_PASSWORD (push access to {host}).
stages: [build, deploy]
variables:
  IMAGE: {repository}:$CI_COMMIT_SHORT_SHA
build:
  stage: build
  image: docker:27
  services: [docker:27-dind]
  script:
    - echo "$REGISTRY_PASSWORD" | docker login {host} -u "$REGISTRY_USERNAME" --password-stdin
    - docker build -t "$IMAGE" .
    - docker push "$IMAGE"
deploy:
  stage: deploy
  image: curlimages/curl:8.11.1
  script:
    - |
{run}
"#,
            project = t.project,
            component = t.component,
            run = indent(&format!("set -eu\n{body}"), 6),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(image: &ImageRef) -> SnippetTarget<'_> {
        SnippetTarget {
            webhook_url: "https://berth.example.com/api/v1/hooks/deploy",
            org: "default",
            project: "shop",
            component: "web",
            image,
        }
    }

    #[test]
    fn repositories_compare_by_host_and_path() {
        let current = ImageRef::parse("127.0.0.1:5000/test/web:v1").unwrap();
        let same = [
            "127.0.0.1:5000/test/web:v2",
            "127.0.0.1:5000/test/web@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ];
        for s in same {
            assert!(
                same_repository(&current, &ImageRef::parse(s).unwrap()),
                "{s}"
            );
        }
        let other = [
            "127.0.0.1:5000/test/other:v1",
            "127.0.0.1:5001/test/web:v1",
            "127.0.0.1:5000/test/web/sub:v1",
        ];
        for s in other {
            assert!(
                !same_repository(&current, &ImageRef::parse(s).unwrap()),
                "{s}"
            );
        }
        let hub = ImageRef::parse("nginx:1").unwrap();
        assert!(same_repository(
            &hub,
            &ImageRef::parse("index.docker.io/library/nginx:2").unwrap()
        ));
    }

    #[test]
    fn idempotency_keys() {
        assert!(validate_idempotency_key("run-42/attempt-1").is_ok());
        assert!(validate_idempotency_key("").is_err());
        assert!(validate_idempotency_key("a b").is_err());
        assert!(validate_idempotency_key(&"x".repeat(256)).is_err());
        assert!(validate_idempotency_key(&"x".repeat(255)).is_ok());
    }

    #[test]
    fn snippets_name_the_url_the_secret_and_the_repository() {
        let image = ImageRef::parse("ghcr.io/acme/web:v1").unwrap();
        for kind in SnippetKind::ALL {
            let text = render_snippet(kind, &target(&image));
            assert!(
                text.contains("https://berth.example.com/api/v1/hooks/deploy"),
                "{kind:?}"
            );
            assert!(text.contains("ghcr.io/acme/web"), "{kind:?}");
            assert!(
                text.contains("Authorization: Bearer $BERTH_TOKEN"),
                "{kind:?}"
            );
            assert!(text.contains("statusUrl"), "{kind:?}");
            assert!(!text.contains("berth_ci_"), "no token in snippets");
            assert_eq!(kind.as_str().parse::<SnippetKind>().unwrap(), kind);
        }
        let gh = render_snippet(SnippetKind::GithubActions, &target(&image));
        assert!(
            gh.contains("BERTH_TOKEN: ${{ secrets.BERTH_TOKEN }}"),
            "{gh}"
        );
        assert!(
            gh.contains("IMAGE: ghcr.io/acme/web:${{ github.sha }}"),
            "{gh}"
        );
        assert!(gh.contains("registry: ghcr.io\n"), "{gh}");
        let gl = render_snippet(SnippetKind::GitlabCi, &target(&image));
        assert!(
            gl.contains("IMAGE: ghcr.io/acme/web:$CI_COMMIT_SHORT_SHA"),
            "{gl}"
        );
        assert!("yaml".parse::<SnippetKind>().is_err());
    }

    #[test]
    fn curl_snippet_is_valid_shell() {
        let image = ImageRef::parse("127.0.0.1:5000/test/web:v1").unwrap();
        let text = render_snippet(SnippetKind::Curl, &target(&image));
        assert!(text.starts_with("#!/bin/sh\n"));
        // The JSON body is built by the shell: the quotes must be escaped for it.
        assert!(text.contains(r#"-d "{\"image\":\"$IMAGE\"}""#), "{text}");
    }
}
