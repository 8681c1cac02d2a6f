//! Query parameters of resource requests, parsed and checked once
//! (`k8s.io/apimachinery/pkg/apis/meta/v1` `ListOptions`, `CreateOptions`, `PatchOptions`,
//! `DeleteOptions`; validation as `apimachinery/pkg/apis/meta/v1/validation`).

use std::time::Duration;

use crate::http::error::ApiError;
use crate::http::negotiate::IncludeObject;
use crate::http::request_info::query_pairs;

/// How unknown fields in a body are treated (`fieldValidation`, default `Warn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum FieldValidation {
    /// Drop them silently.
    Ignore,
    /// Drop them and say so in `Warning` headers.
    #[default]
    Warn,
    /// Refuse the request (400).
    Strict,
}

/// Every query parameter we read.
#[derive(Clone, Debug, Default)]
pub(crate) struct Options {
    pub(crate) dry_run: bool,
    pub(crate) field_manager: Option<String>,
    pub(crate) field_validation: FieldValidation,
    pub(crate) force: Option<bool>,
    pub(crate) label_selector: Option<String>,
    pub(crate) field_selector: Option<String>,
    pub(crate) limit: Option<u64>,
    pub(crate) continue_token: Option<String>,
    pub(crate) resource_version: Option<String>,
    pub(crate) resource_version_match: Option<String>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) allow_watch_bookmarks: bool,
    pub(crate) send_initial_events: Option<bool>,
    pub(crate) include_object: IncludeObject,
    /// `revision` of the `artifact` subresource: serve only that artifact revision.
    pub(crate) revision: Option<String>,
}

fn boolean(key: &str, value: &str) -> Result<bool, ApiError> {
    match value {
        "true" | "1" | "True" => Ok(true),
        "false" | "0" | "False" | "" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "invalid boolean value {value:?} for {key}"
        ))),
    }
}

impl Options {
    /// Parses the query string.
    ///
    /// # Errors
    /// 400 for malformed numbers or booleans, 422 for `dryRun` other than `All`, an unknown
    /// `fieldValidation` or a `fieldManager` over 128 characters.
    pub(crate) fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let mut o = Options::default();
        for (key, value) in query_pairs(query) {
            match key.as_str() {
                "dryRun" => {
                    if value != "All" {
                        return Err(ApiError::invalid_options(
                            "dryRun",
                            &format!("Unsupported value: \"{value}\": supported values: \"All\""),
                        ));
                    }
                    o.dry_run = true;
                }
                "fieldManager" => {
                    if value.chars().count() > 128 {
                        return Err(ApiError::invalid_options(
                            "fieldManager",
                            "Too long: may not be more than 128 bytes",
                        ));
                    }
                    o.field_manager = Some(value);
                }
                "fieldValidation" => {
                    o.field_validation = match value.as_str() {
                        "Ignore" => FieldValidation::Ignore,
                        "Warn" | "" => FieldValidation::Warn,
                        "Strict" => FieldValidation::Strict,
                        other => {
                            return Err(ApiError::invalid_options(
                                "fieldValidation",
                                &format!(
                                    "Unsupported value: \"{other}\": supported values: \"Ignore\", \"Strict\", \"Warn\""
                                ),
                            ));
                        }
                    }
                }
                "force" => o.force = Some(boolean(&key, &value)?),
                "labelSelector" if !value.is_empty() => o.label_selector = Some(value),
                "fieldSelector" if !value.is_empty() => o.field_selector = Some(value),
                "limit" => {
                    let limit: i64 = value
                        .parse()
                        .map_err(|_| ApiError::bad_request(format!("invalid limit {value:?}")))?;
                    o.limit = (limit > 0).then_some(limit as u64);
                }
                "continue" if !value.is_empty() => o.continue_token = Some(value),
                "resourceVersion" if !value.is_empty() => o.resource_version = Some(value),
                "resourceVersionMatch" if !value.is_empty() => {
                    o.resource_version_match = Some(value)
                }
                "timeoutSeconds" => {
                    let seconds: u64 = value.parse().map_err(|_| {
                        ApiError::bad_request(format!("invalid timeoutSeconds {value:?}"))
                    })?;
                    o.timeout = Some(Duration::from_secs(seconds));
                }
                "allowWatchBookmarks" => o.allow_watch_bookmarks = boolean(&key, &value)?,
                "sendInitialEvents" => o.send_initial_events = Some(boolean(&key, &value)?),
                "revision" => o.revision = Some(value),
                "includeObject" => {
                    o.include_object = match value.as_str() {
                        "Object" => IncludeObject::Object,
                        "None" => IncludeObject::None,
                        _ => IncludeObject::Metadata,
                    }
                }
                _ => {}
            }
        }
        Ok(o)
    }

    /// The storage list options.
    pub(crate) fn list_options(&self) -> storage::ListOptions {
        storage::ListOptions {
            label_selector: self.label_selector.clone(),
            field_selector: self.field_selector.clone(),
            limit: self.limit,
            continue_token: self.continue_token.clone(),
        }
    }

    /// The write options.
    pub(crate) fn write_options(&self) -> storage::WriteOptions {
        storage::WriteOptions {
            dry_run: self.dry_run,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dry_run_must_be_all() {
        assert!(Options::parse(Some("dryRun=All")).unwrap().dry_run);
        let err = Options::parse(Some("dryRun=Server")).unwrap_err();
        assert_eq!(err.code, http::StatusCode::UNPROCESSABLE_ENTITY);
    }

    #[test]
    fn field_validation_defaults_to_warn() {
        assert_eq!(
            Options::parse(None).unwrap().field_validation,
            FieldValidation::Warn
        );
        assert_eq!(
            Options::parse(Some("fieldValidation=Strict"))
                .unwrap()
                .field_validation,
            FieldValidation::Strict
        );
        assert!(Options::parse(Some("fieldValidation=Loud")).is_err());
    }

    #[test]
    fn list_parameters() {
        let o = Options::parse(Some(
            "labelSelector=app%3Dpodinfo&limit=500&continue=abc&timeoutSeconds=5&allowWatchBookmarks=true",
        ))
        .unwrap();
        assert_eq!(o.label_selector.as_deref(), Some("app=podinfo"));
        assert_eq!(o.limit, Some(500));
        assert_eq!(o.continue_token.as_deref(), Some("abc"));
        assert_eq!(o.timeout, Some(Duration::from_secs(5)));
        assert!(o.allow_watch_bookmarks);
        assert!(Options::parse(Some("limit=abc")).is_err());
    }
}
