//! What both backends share of a list request: its parsed arguments ([`ListQuery`]) and the
//! continue token that pins later pages to the first page's revision
//! (`k8s.io/apiserver: pkg/storage/continue.go`).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::selector::Filter;
use crate::store::ListOptions;

/// The only token version there is, as upstream writes it.
const TOKEN_VERSION: &str = "meta.k8s.io/v1";

/// The content of a continue token: upstream's `{"v":"meta.k8s.io/v1","rv":N,"start":"…"}`,
/// base64url-encoded without padding. Opaque to clients.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ContinueToken {
    v: String,
    /// The revision of the first page (> 0); every later page reads at it.
    pub(crate) rv: u64,
    /// Where the next page starts, in the backend's own terms (never empty): etcd's next key
    /// relative to the list's prefix; SQLite's `<namespace>/<name>` of the last item returned.
    pub(crate) start: String,
}

impl ContinueToken {
    /// A token for the page after `start` at revision `rv`.
    pub(crate) fn new(rv: u64, start: String) -> Self {
        Self {
            v: TOKEN_VERSION.into(),
            rv,
            start,
        }
    }

    /// The token as a client sees it.
    pub(crate) fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).expect("token serializes"))
    }

    /// Parses a token a client sent back.
    ///
    /// # Errors
    /// [`Error::InvalidContinue`] (400) for anything this server did not produce: not base64,
    /// not the JSON shape, another version, a zero revision or an empty start (upstream's
    /// messages: `continue key is not valid: …`).
    pub(crate) fn decode(token: &str) -> Result<Self> {
        let invalid = |detail: &str| Error::InvalidContinue {
            message: format!("continue key is not valid: {detail}"),
        };
        let bytes = URL_SAFE_NO_PAD
            .decode(token.trim_end_matches('='))
            .map_err(|_| invalid("not base64"))?;
        let t: ContinueToken =
            serde_json::from_slice(&bytes).map_err(|_| invalid("not a continue token"))?;
        if t.v != TOKEN_VERSION {
            return Err(invalid(&format!(
                "incorrect encoded start resourceVersion (version {})",
                t.v
            )));
        }
        if t.rv == 0 || t.start.is_empty() {
            return Err(invalid("incorrect encoded start resourceVersion"));
        }
        Ok(t)
    }
}

/// A list request's arguments, parsed before any storage work so that a bad selector or token
/// fails fast and both backends read them the same way.
#[derive(Debug)]
pub(crate) struct ListQuery {
    /// The label and field selectors.
    pub(crate) filter: Filter,
    /// Items per page; `None` for no limit (`limit=0` counts as none, as upstream).
    pub(crate) limit: Option<usize>,
    /// The continue token of a later page.
    pub(crate) token: Option<ContinueToken>,
}

impl ListQuery {
    /// Parses the selectors, limit and continue token of `opts` (an empty token is none).
    ///
    /// # Errors
    /// [`Error::InvalidSelector`], [`Error::InvalidFieldSelector`] and
    /// [`Error::InvalidContinue`], as [`crate::ObjectStore::list`] documents.
    pub(crate) fn parse(opts: &ListOptions) -> Result<Self> {
        let filter = Filter::parse(
            opts.label_selector.as_deref(),
            opts.field_selector.as_deref(),
        )?;
        let token = opts
            .continue_token
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(ContinueToken::decode)
            .transpose()?;
        Ok(Self {
            filter,
            limit: opts.limit.filter(|&l| l > 0).map(|l| l as usize),
            token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    #[test]
    fn a_token_round_trips_in_upstreams_shape() {
        let token = ContinueToken::new(42, "default/podinfo".into());
        let text = token.encode();
        let json = String::from_utf8(URL_SAFE_NO_PAD.decode(&text).unwrap()).unwrap();
        assert_eq!(
            json,
            r#"{"v":"meta.k8s.io/v1","rv":42,"start":"default/podinfo"}"#
        );
        assert_eq!(ContinueToken::decode(&text).unwrap(), token);
        // Clients may add padding back.
        assert_eq!(ContinueToken::decode(&format!("{text}==")).unwrap(), token);
    }

    #[test]
    fn tokens_this_server_did_not_write_are_refused_with_upstreams_message() {
        for (token, detail) in [
            ("%%%".to_owned(), "not base64"),
            (encoded("[1,2]"), "not a continue token"),
            (
                encoded(r#"{"v":"x/v9","rv":3,"start":"a"}"#),
                "incorrect encoded start resourceVersion (version x/v9)",
            ),
            (
                encoded(r#"{"v":"meta.k8s.io/v1","rv":0,"start":"a"}"#),
                "incorrect encoded start resourceVersion",
            ),
            (
                encoded(r#"{"v":"meta.k8s.io/v1","rv":3,"start":""}"#),
                "incorrect encoded start resourceVersion",
            ),
        ] {
            match ContinueToken::decode(&token) {
                Err(Error::InvalidContinue { message }) => {
                    assert_eq!(message, format!("continue key is not valid: {detail}"));
                }
                other => panic!("{token}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_query_treats_limit_zero_and_an_empty_token_as_absent() {
        let q = ListQuery::parse(&ListOptions {
            limit: Some(0),
            continue_token: Some(String::new()),
            ..ListOptions::default()
        })
        .unwrap();
        assert_eq!((q.limit, q.token), (None, None));
        let q = ListQuery::parse(&ListOptions {
            limit: Some(5),
            label_selector: Some("app=podinfo".into()),
            ..ListOptions::default()
        })
        .unwrap();
        assert_eq!(q.limit, Some(5));
        assert!(!q.filter.is_empty());
    }

    #[test]
    fn a_bad_selector_fails_before_the_token_is_read() {
        let err = ListQuery::parse(&ListOptions {
            label_selector: Some("a in (".into()),
            continue_token: Some("%%%".into()),
            ..ListOptions::default()
        })
        .unwrap_err();
        assert!(matches!(err, Error::InvalidSelector { .. }), "{err:?}");
    }
}
