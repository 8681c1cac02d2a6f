//! `sourcectl generate key-pair`: cosign-compatible `cosign.key` / `cosign.pub`, and the
//! password handling shared with `sign`.

use std::io::{IsTerminal as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use registry::cosign::PrivateKey;

use crate::args::KeyPairArgs;
use crate::status;

/// The environment variable cosign reads the key password from (may be set and empty).
pub(crate) const PASSWORD_ENV: &str = "COSIGN_PASSWORD";

/// The key password: `$COSIGN_PASSWORD` when set (even empty), else a prompt on the terminal
/// (twice when `confirm`), else an error.
pub(crate) fn password(confirm: bool) -> anyhow::Result<String> {
    if let Some(pw) = std::env::var_os(PASSWORD_ENV) {
        return pw
            .into_string()
            .map_err(|_| anyhow::anyhow!("{PASSWORD_ENV} is not valid UTF-8"));
    }
    if !std::io::stdin().is_terminal() {
        bail!("{PASSWORD_ENV} is not set and stdin is not a terminal to prompt for the password");
    }
    let first = rpassword::prompt_password("Enter password for private key: ")
        .context("reading the password")?;
    if confirm {
        let again = rpassword::prompt_password("Enter password for private key again: ")
            .context("reading the password")?;
        if again != first {
            bail!("passwords do not match");
        }
    }
    Ok(first)
}

/// Reads and decrypts a cosign private key file (scrypt runs on the blocking pool).
pub(crate) async fn load_private_key(path: &Path) -> anyhow::Result<PrivateKey> {
    let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let password = password(false)?;
    tokio::task::spawn_blocking(move || PrivateKey::from_encrypted_pem(&pem, password.as_bytes()))
        .await
        .context("decrypting the private key")?
        .with_context(|| format!("loading private key {}", path.display()))
}

pub(crate) async fn run(args: KeyPairArgs) -> anyhow::Result<ExitCode> {
    let key_path = PathBuf::from(format!("{}.key", args.output_key_prefix));
    let pub_path = PathBuf::from(format!("{}.pub", args.output_key_prefix));
    for p in [&key_path, &pub_path] {
        if p.exists() {
            bail!("{} already exists, refusing to overwrite it", p.display());
        }
    }
    let password = password(true)?;
    status::action("generating ECDSA P-256 key pair");
    let (key_pem, pub_pem) = tokio::task::spawn_blocking(move || {
        let key = PrivateKey::generate()?;
        let key_pem = key.to_encrypted_pem(password.as_bytes())?;
        let pub_pem = key.public_key()?.to_pem()?;
        Ok::<_, registry::cosign::KeyError>((key_pem, pub_pem))
    })
    .await
    .context("generating the key pair")?
    .context("generating the key pair")?;
    write_new(&key_path, &key_pem, 0o600)?;
    status::success(&format!("private key written to {}", key_path.display()));
    write_new(&pub_path, &pub_pem, 0o644)?;
    status::success(&format!("public key written to {}", pub_path.display()));
    Ok(ExitCode::SUCCESS)
}

/// Creates `path` (failing if it exists) with `mode` and writes `bytes`.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}
