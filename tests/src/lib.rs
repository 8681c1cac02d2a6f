//! Test support shared by the integration and end-to-end suites: builders that start real parts
//! (the CNCF Distribution registry, the server, kubectl) on loopback and return handles that stop
//! them on drop, plus the test PKI.
#![deny(missing_docs)]

pub mod aggregator;
pub mod e2e;
pub mod etcd;
pub mod front;
pub mod https;
pub mod in_cluster;
#[cfg(feature = "in-process")]
pub mod in_process;
pub mod kube_fake;
pub mod kubectl;
pub mod notification;
pub mod pki;
pub mod registry;
pub mod server;
pub mod sigstore;
pub mod tmpfs;
pub mod tools;
pub mod tuf;
