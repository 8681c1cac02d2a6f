//! The HTTP layer, in the order a request meets it: the TLS [`listener`] accepts a connection
//! and hands each request to the [`router`], whose layers (composed in one place,
//! [`router::router`]) open a trace span, bound the request's time ([`timeout`]), authenticate
//! the caller and parse the [`request_info`] ([`filters`]), and authorise it before a handler
//! runs. [`negotiate`] chooses the response's form, [`error`] renders every failure as a
//! Kubernetes `Status`, and [`state`] holds what handlers share.

pub mod error;
pub mod filters;
pub mod listener;
pub mod negotiate;
pub mod request_info;
pub mod router;
pub mod state;
pub mod timeout;

pub use error::ApiError;
pub use request_info::{RequestInfo, Verb};
pub use state::AppState;
