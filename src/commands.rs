//! Runs one parsed command: the two roles, key generation, fingerprints and the
//! demo. Each branch turns raw arguments into settings through [`crate::config`]
//! and hands off to the module that does the work.

use crate::cli::{Command, FingerprintArgs, KeygenArgs};
use crate::config::{LocalConfig, RemoteConfig};
use crate::error::Error;
use crate::keys::{self, PrivateKey};
use crate::local::Local;
use crate::remote::Remote;
use crate::shutdown::Shutdown;

/// Runs `command` to completion. The roles return after SIGTERM or SIGINT and a
/// drain of open connections.
///
/// # Errors
/// Settings, key or listen failures, or a failed demo.
pub async fn run(command: Command) -> Result<(), Error> {
    match command {
        Command::Local(args) => {
            let config = LocalConfig::from_args(&args)?;
            let pooled = config.pool * config.forwards.len();
            crate::net::raise_open_file_limit(config.limits.max_connections, pooled);
            let local = Local::bind(config).await?;
            local.run(stop_on_signals()?).await;
            Ok(())
        }
        Command::Remote(args) => {
            let config = RemoteConfig::from_args(&args)?;
            crate::net::raise_open_file_limit(config.limits.max_connections, 0);
            let remote = Remote::bind(config).await?;
            remote.run(stop_on_signals()?).await;
            Ok(())
        }
        Command::Keygen(args) => keygen(&args),
        Command::Fingerprint(args) => fingerprint(&args),
        Command::Demo(args) => crate::demo::run(args.bytes).await,
    }
}

fn stop_on_signals() -> Result<Shutdown, Error> {
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals().map_err(|source| Error::Io {
        context: "installing signal handlers".into(),
        source,
    })?;
    Ok(shutdown)
}

fn keygen(args: &KeygenArgs) -> Result<(), Error> {
    let key = PrivateKey::generate(args.bits)?;
    let public_path = key.write_pair(&args.output, args.force)?;
    println!("private key: {}", args.output.display());
    println!("public key:  {}", public_path.display());
    println!("fingerprint: {}", key.public_key().fingerprint());
    Ok(())
}

fn fingerprint(args: &FingerprintArgs) -> Result<(), Error> {
    for path in &args.files {
        let key = keys::load_public_key(path)?;
        println!(
            "{}  {} ({} bits)",
            key.fingerprint(),
            path.display(),
            key.bits()
        );
    }
    Ok(())
}
