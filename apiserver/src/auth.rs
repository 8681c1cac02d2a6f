//! Who is calling and what they may do: [`authentication`] turns a request into a
//! [`UserInfo`], [`authorization`] decides on a [`RequestInfo`](crate::http::RequestInfo), and
//! [`pki`] makes the standalone mode's certificates. Both decisions are async traits so that the
//! aggregated mode's TokenReview and SubjectAccessReview (network calls) fit behind them without
//! touching the HTTP layers that call them ([`crate::http::filters`]).

pub mod authentication;
pub mod authorization;
pub mod pki;

pub use authentication::{
    AUTHENTICATED_GROUP, AuthenticationError, Authenticator, AuthenticatorChain,
    CertificateAuthenticator, PeerCertificate, RequestAuthenticator, TokenFileAuthenticator,
    TokenFileError, UserInfo,
};
pub use authorization::{Authorizer, Decision, MastersAuthorizer};
