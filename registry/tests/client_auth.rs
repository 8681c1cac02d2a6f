//! Authentication against the real registry: htpasswd Basic, the Bearer token flow (token reuse,
//! anonymous tokens, refresh tokens), docker config `auths`, credential helpers, and
//! classification of wrong credentials.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use base64::Engine as _;
use bytes::Bytes;
use registry::client::{Client, ClientConfig, Credentials, DockerConfig, Error};
use registry::manifest::{Descriptor, ImageManifest, media_types};
use registry::{Digest, Reference};
use test_support::registry::{Registry, RegistryBuilder, TokenAuth};

fn client(credentials: Credentials) -> Client {
    Client::new(ClientConfig {
        insecure: true,
        credentials,
        ..ClientConfig::default()
    })
    .unwrap()
}

fn basic(u: &str, p: &str) -> Credentials {
    Credentials::Basic {
        username: u.into(),
        password: p.into(),
    }
}

fn reference(reg: &Registry, repo_tag: &str) -> Reference {
    format!("{}/{repo_tag}", reg.host()).parse().unwrap()
}

async fn push_artifact(client: &Client, r: &Reference) -> Result<Digest, Error> {
    let config = client.push_blob_bytes(r, Bytes::from_static(b"{}")).await?;
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(media_types::OCI_MANIFEST.into()),
        artifact_type: None,
        config: Descriptor::new(media_types::FLUX_CONFIG, config.digest, config.size),
        layers: vec![],
        subject: None,
        annotations: None,
    };
    let bytes = Bytes::from(serde_json::to_vec(&manifest).unwrap());
    client
        .push_manifest(r, media_types::OCI_MANIFEST, bytes)
        .await
}

fn write_helper(dir: &Path, name: &str, body: &str) {
    let path = dir.join(format!("docker-credential-{name}"));
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test]
async fn htpasswd_basic_auth_accepts_the_user_and_classifies_failures() {
    let reg = RegistryBuilder::new().htpasswd("alice", "s3cret").start();
    let r = reference(&reg, "app:v1");
    let good = client(basic("alice", "s3cret"));
    let digest = push_artifact(&good, &r).await.unwrap();
    assert_eq!(good.resolve(&r).await.unwrap().digest, digest);
    assert_eq!(good.list_tags(&r).await.unwrap(), ["v1"]);

    let err = client(basic("alice", "wrong"))
        .resolve(&r)
        .await
        .unwrap_err();
    assert!(err.is_auth(), "{err:?}");
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    assert!(!err.to_string().contains("wrong"), "password leaked: {err}");
    let err = client(Credentials::Anonymous)
        .resolve(&r)
        .await
        .unwrap_err();
    assert!(err.is_auth(), "{err:?}");
}

#[tokio::test]
async fn token_auth_reuses_tokens_per_scope() {
    let reg = RegistryBuilder::new()
        .token_auth(TokenAuth::new("alice", "s3cret"))
        .start();
    let r = reference(&reg, "app:v1");
    let c = client(basic("alice", "s3cret"));
    let digest = push_artifact(&c, &r).await.unwrap();
    let after_push = reg.tokens_issued();
    assert!(
        (1..=2).contains(&after_push),
        "push took {after_push} tokens"
    );
    for _ in 0..3 {
        assert_eq!(c.resolve(&r).await.unwrap().digest, digest);
        assert_eq!(c.list_tags(&r).await.unwrap(), ["v1"]);
        c.get_manifest(&r).await.unwrap();
    }
    // Pulls need one more token (pull scope) and then reuse it; clones share the cache.
    assert_eq!(reg.tokens_issued(), after_push + 1);
    c.clone().resolve(&r).await.unwrap();
    assert_eq!(reg.tokens_issued(), after_push + 1);
    // Another repository is another scope.
    push_artifact(&c, &reference(&reg, "other:v1"))
        .await
        .unwrap();
    assert!(reg.tokens_issued() > after_push + 1);
}

#[tokio::test]
async fn token_auth_rejects_wrong_and_anonymous_credentials() {
    let reg = RegistryBuilder::new()
        .token_auth(TokenAuth::new("alice", "s3cret"))
        .start();
    let r = reference(&reg, "app:v1");
    push_artifact(&client(basic("alice", "s3cret")), &r)
        .await
        .unwrap();

    let err = client(basic("alice", "nope"))
        .resolve(&r)
        .await
        .unwrap_err();
    assert!(err.is_auth(), "{err:?}");
    assert!(err.to_string().contains("token endpoint"), "{err}");
    let err = client(Credentials::Anonymous)
        .resolve(&r)
        .await
        .unwrap_err();
    assert!(err.is_auth(), "{err:?}");
}

#[tokio::test]
async fn anonymous_tokens_allow_pull_but_not_push() {
    let reg = RegistryBuilder::new()
        .token_auth(TokenAuth::new("alice", "s3cret").anonymous_pull(true))
        .start();
    let r = reference(&reg, "app:v1");
    let digest = push_artifact(&client(basic("alice", "s3cret")), &r)
        .await
        .unwrap();
    let anon = client(Credentials::Anonymous);
    assert_eq!(anon.resolve(&r).await.unwrap().digest, digest);
    let err = anon
        .push_blob_bytes(&r, Bytes::from_static(b"nope"))
        .await
        .unwrap_err();
    assert!(err.is_auth(), "{err:?}");
}

#[tokio::test]
async fn a_registry_token_is_sent_as_bearer() {
    let reg = RegistryBuilder::new()
        .token_auth(TokenAuth::new("alice", "s3cret"))
        .start();
    let r = reference(&reg, "app:v1");
    let digest = push_artifact(&client(basic("alice", "s3cret")), &r)
        .await
        .unwrap();
    let url = format!(
        "{}?service={}&scope=repository:app:pull",
        reg.token_realm().unwrap(),
        test_support::registry::TOKEN_SERVICE
    );
    let body: serde_json::Value = reqwest::Client::new()
        .get(url)
        .basic_auth("alice", Some("s3cret"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = body["token"].as_str().unwrap().to_owned();
    let before = reg.tokens_issued();
    let c = client(Credentials::Token(token));
    assert_eq!(c.resolve(&r).await.unwrap().digest, digest);
    assert_eq!(
        reg.tokens_issued(),
        before,
        "a registry token must not be exchanged"
    );
    let err = client(Credentials::Token("garbage".into()))
        .resolve(&r)
        .await
        .unwrap_err();
    assert!(err.is_auth(), "{err:?}");
}

#[tokio::test]
async fn docker_config_auths_and_identity_tokens() {
    let reg = RegistryBuilder::new()
        .token_auth(TokenAuth::new("alice", "s3cret").refresh_token("refresh-abc"))
        .start();
    let r = reference(&reg, "app:v1");
    let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
    let json = format!(
        r#"{{"auths":{{"http://{}/v1/":{{"auth":"{auth}"}}}}}}"#,
        reg.host()
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, json).unwrap();
    let c = client(Credentials::DockerConfig(
        DockerConfig::from_path(&path).unwrap(),
    ));
    let digest = push_artifact(&c, &r).await.unwrap();

    let json = format!(
        r#"{{"auths":{{"{}":{{"identitytoken":"refresh-abc"}}}}}}"#,
        reg.host()
    );
    let c = client(Credentials::DockerConfig(
        DockerConfig::from_json(json.as_bytes()).unwrap(),
    ));
    assert_eq!(c.resolve(&r).await.unwrap().digest, digest);

    let json = format!(
        r#"{{"auths":{{"{}":{{"identitytoken":"stale"}}}}}}"#,
        reg.host()
    );
    let c = client(Credentials::DockerConfig(
        DockerConfig::from_json(json.as_bytes()).unwrap(),
    ));
    let err = c.resolve(&r).await.unwrap_err();
    assert!(err.is_auth(), "{err:?}");

    // Credentials for another host are not used.
    let json = format!(r#"{{"auths":{{"elsewhere.example":{{"auth":"{auth}"}}}}}}"#);
    let c = client(Credentials::DockerConfig(
        DockerConfig::from_json(json.as_bytes()).unwrap(),
    ));
    assert!(c.resolve(&r).await.unwrap_err().is_auth());

    let err = DockerConfig::from_path(&dir.path().join("missing.json")).unwrap_err();
    assert!(
        matches!(err, Error::DockerConfig { path: Some(_), .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn credential_helpers_are_run_with_the_host_on_stdin() {
    let reg = RegistryBuilder::new().htpasswd("alice", "s3cret").start();
    let r = reference(&reg, "app:v1");
    let bin = tempfile::tempdir().unwrap();
    write_helper(
        bin.path(),
        "test",
        &format!(
            r#"read -r host
if [ "$1" = get ] && [ "$host" = "{}" ]; then
  echo '{{"ServerURL":"'"$host"'","Username":"alice","Secret":"s3cret"}}'
  exit 0
fi
echo "credentials not found in native keychain"; exit 1"#,
            reg.host()
        ),
    );
    write_helper(
        bin.path(),
        "empty",
        "echo 'credentials not found in native keychain'; exit 1",
    );
    write_helper(bin.path(), "broken", "echo 'keychain locked' >&2; exit 3");
    let config = |json: String| {
        Credentials::DockerConfig(
            DockerConfig::from_json(json.as_bytes())
                .unwrap()
                .with_helper_path(bin.path().as_os_str()),
        )
    };

    let c = client(config(format!(
        r#"{{"credHelpers":{{"{}":"test"}}}}"#,
        reg.host()
    )));
    push_artifact(&c, &r).await.unwrap();
    let c = client(config(r#"{"credsStore":"test"}"#.to_owned()));
    c.resolve(&r).await.unwrap();

    // "credentials not found" means anonymous, which this registry refuses.
    let c = client(config(r#"{"credsStore":"empty"}"#.to_owned()));
    let err = c.resolve(&r).await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    // ... but an `auths` entry still applies then.
    let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
    let c = client(config(format!(
        r#"{{"credsStore":"empty","auths":{{"{}":{{"auth":"{auth}"}}}}}}"#,
        reg.host()
    )));
    c.resolve(&r).await.unwrap();

    let c = client(config(r#"{"credsStore":"broken"}"#.to_owned()));
    let err = c.resolve(&r).await.unwrap_err();
    assert!(matches!(err, Error::CredentialHelper { .. }), "{err:?}");
    assert!(err.to_string().contains("keychain locked"), "{err}");
    assert!(err.is_auth());
}

#[tokio::test]
async fn token_scopes_limit_what_the_user_may_do() {
    let reg = RegistryBuilder::new()
        .token_auth(
            TokenAuth::new("alice", "s3cret")
                .grant("app", &["pull", "push"])
                .grant("readonly", &["pull"]),
        )
        .start();
    let c = client(Credentials::DockerConfig(
        DockerConfig::from_json(reg.docker_config_json().as_bytes()).unwrap(),
    ));
    push_artifact(&c, &reference(&reg, "app:v1")).await.unwrap();
    let err = push_artifact(&c, &reference(&reg, "readonly:v1"))
        .await
        .unwrap_err();
    assert!(err.is_auth(), "{err:?}");
    let err = c.resolve(&reference(&reg, "secret:v1")).await.unwrap_err();
    assert!(err.is_auth(), "{err:?}");
}
