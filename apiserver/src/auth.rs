//! Who is calling and what they may do: [`authentication`] turns a request into a
//! [`UserInfo`], [`authorization`] decides on a [`RequestInfo`](crate::http::RequestInfo), and
//! [`pki`] makes the standalone mode's certificates. Both decisions are async traits so that the
//! in-cluster mode's TokenReview and SubjectAccessReview (network calls) fit behind them without
//! touching the HTTP layers that call them ([`crate::http::filters`]).
//!
//! The in-cluster mode (k8s.io/apiserver's delegated authentication and authorisation):
//! [`delegating`] chains [`request_header`] (front proxy), [`x509`] (client certificates) and
//! [`token_review`] (bearer tokens) with anonymous access, trusting what [`trust`] holds (flags
//! and the `extension-apiserver-authentication` ConfigMap, reloaded);
//! [`authorization::DelegatingAuthorizer`] asks [`subject_access_review`].

pub mod authentication;
pub mod authorization;
pub mod client_certificate;
pub mod delegating;
pub mod in_cluster;
pub mod pki;
pub mod request_header;
pub mod subject_access_review;
pub mod token_review;
pub mod trust;
pub mod ttl_cache;
pub mod x509;

pub use authentication::{
    AUTHENTICATED_GROUP, AuthenticationError, Authenticator, AuthenticatorChain,
    CertificateAuthenticator, PeerCertificate, RequestAuthenticator, TokenFileAuthenticator,
    TokenFileError, UserInfo,
};
pub use authorization::{
    Authorization, Authorizer, Decision, DelegatingAuthorizer, MastersAuthorizer,
    StandaloneAuthorizer,
};
