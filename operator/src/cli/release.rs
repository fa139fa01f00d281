//! `miracolix-operator release canonicalize|sign|verify`: the release manager's tools.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;

use super::EXIT_NOT_CERTIFIED;
use crate::admission::{self, AdmissionError};
use crate::api::{ComponentRelease, ComponentReleaseSpec, GROUP, ReleaseSignature, VERSION};
use crate::release::{
    self, CanonicalError, SignError, SigningKey, TrustError, TrustStore, TrustedKey, Verdict,
};
use crate::yaml::{self, YamlError};

/// Key id given to a `--key` used for a detached `--signature` without `--key-id`: the key is
/// trusted because it was named on the command line, so its id carries no meaning.
const DETACHED_KEY_ID: &str = "command-line-key";

#[derive(Debug, clap::Args)]
pub struct ReleaseArgs {
    #[command(subcommand)]
    pub command: ReleaseCommand,
}

#[derive(Debug, Subcommand)]
pub enum ReleaseCommand {
    /// Print exactly the bytes a release signature covers (format miracolix-release-v1).
    Canonicalize(CanonicalizeArgs),
    /// Sign a release: write it with spec.signature set.
    Sign(SignArgs),
    /// Verify a release's signature. Exit status 0 only when it is certified, 1 when it is
    /// not (the reason is printed), 2 when the input cannot be read or is refused by the CRD.
    Verify(VerifyArgs),
    /// Show which release every DizSite runs, per kubeconfig context.
    Status(super::release_status::StatusArgs),
}

#[derive(Debug, clap::Args)]
pub struct CanonicalizeArgs {
    /// The ComponentRelease YAML file (`-` for standard input).
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct SignArgs {
    /// The ComponentRelease YAML file (`-` for standard input).
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// PEM private key: PKCS#8 (ECDSA P-256 or Ed25519) or SEC1 `EC PRIVATE KEY` (P-256).
    #[arg(long)]
    pub key: PathBuf,
    /// The key's id among the operator's trusted keys.
    #[arg(long)]
    pub key_id: String,
    /// Write the signed release here instead of standard output (may be the input file).
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    /// Print only the `signature:` block, to paste under `spec:` of a hand-maintained file
    /// whose comments a rewrite would lose.
    #[arg(long, conflicts_with = "output")]
    pub signature_only: bool,
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The ComponentRelease YAML file (`-` for standard input).
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// PEM public key to verify with.
    #[arg(long, required_unless_present = "trust_dir")]
    pub key: Option<PathBuf>,
    /// Directory of trusted `<keyId>.pem` public keys, as the operator mounts them.
    #[arg(long, conflicts_with = "key")]
    pub trust_dir: Option<PathBuf>,
    /// Id of `--key`. Without it, `--key` is taken to be the key the release names.
    #[arg(long)]
    pub key_id: Option<String>,
    /// Detached signature (base64 text, e.g. from `openssl dgst -sha256 -sign k.pem | base64`
    /// or `cosign sign-blob`) to verify instead of spec.signature.
    #[arg(long)]
    pub signature: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReleaseCliError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Yaml {
        path: String,
        // Boxed: the parser's error is large and would make every Result of this module large.
        source: Box<YamlError>,
    },
    #[error("{path}: {detail}")]
    NotARelease { path: String, detail: String },
    /// The CRD refuses it: no cluster would admit it, so it is neither signed nor verified.
    #[error("{path}: {source}")]
    Refused {
        path: String,
        source: AdmissionError,
    },
    #[error("{path}: {source}")]
    NotCanonical {
        path: String,
        source: CanonicalError,
    },
    #[error(transparent)]
    Sign(#[from] SignError),
    #[error(transparent)]
    Trust(#[from] TrustError),
    #[error(transparent)]
    Status(#[from] super::release_status::StatusError),
    #[error("--signature with --trust-dir needs --key-id to say which trusted key signed")]
    DetachedNeedsKeyId,
}

pub fn run(args: &ReleaseArgs) -> Result<ExitCode, ReleaseCliError> {
    match &args.command {
        ReleaseCommand::Canonicalize(args) => canonicalize(args),
        ReleaseCommand::Sign(args) => sign(args),
        ReleaseCommand::Verify(args) => verify(args),
        ReleaseCommand::Status(args) => Ok(super::release_status::run(args)?),
    }
}

fn canonicalize(args: &CanonicalizeArgs) -> Result<ExitCode, ReleaseCliError> {
    let doc = ReleaseDocument::read(&args.file, Admit::AsWritten)?;
    let bytes = release::canonicalize(&doc.spec).map_err(|source| doc.not_canonical(source))?;
    write_stdout(&bytes)?;
    Ok(ExitCode::SUCCESS)
}

fn sign(args: &SignArgs) -> Result<ExitCode, ReleaseCliError> {
    let mut doc = ReleaseDocument::read(&args.file, Admit::WithoutSignature)?;
    let key_pem = read(&args.key)?;
    let key = SigningKey::from_pem(&key_pem, &args.key.display().to_string())?;
    let signature = release::sign_release(&doc.spec, &key, &args.key_id).map_err(|e| match e {
        SignError::NotCanonical(source) => doc.not_canonical(source),
        other => other.into(),
    })?;
    doc.set_signature(&signature)?;
    // Checked as signed, not as read: the signature being replaced does not matter, the new one
    // is part of what a cluster admits (a key id too long for the CRD, say). Nothing is
    // certified that no cluster would take.
    doc.admit()?;
    let text = if args.signature_only {
        let block = serde_json::json!({ "signature": signature });
        yaml::to_string(&block).map_err(|source| doc.yaml_error(source))?
    } else {
        yaml::to_string(&doc.raw).map_err(|source| doc.yaml_error(source))?
    };
    match &args.output {
        Some(path) => std::fs::write(path, text).map_err(|source| ReleaseCliError::Write {
            path: path.display().to_string(),
            source,
        })?,
        None => write_stdout(text.as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(args: &VerifyArgs) -> Result<ExitCode, ReleaseCliError> {
    // A release no cluster admits is not a verdict's business: it is broken input.
    let doc = ReleaseDocument::read(&args.file, Admit::AsWritten)?;
    let spec = &doc.spec;
    let detached = match &args.signature {
        Some(path) => Some(read(path)?),
        None => None,
    };

    let (trust, detached_key_id) = match (&args.trust_dir, &args.key) {
        (Some(dir), _) => {
            let trust = TrustStore::from_dir(dir)?;
            match (&detached, &args.key_id) {
                (Some(_), None) => return Err(ReleaseCliError::DetachedNeedsKeyId),
                (_, id) => (trust, id.clone()),
            }
        }
        (None, Some(key_path)) => {
            let key_id = match (&args.key_id, &detached, &spec.signature) {
                (Some(id), _, _) => id.clone(),
                (None, Some(_), _) => DETACHED_KEY_ID.to_string(),
                (None, None, Some(sig)) => sig.key_id.clone(),
                // Unsigned: the verdict is Unsigned whatever the id.
                (None, None, None) => DETACHED_KEY_ID.to_string(),
            };
            let pem = read(key_path)?;
            let key = TrustedKey::from_pem(&key_id, &pem, &key_path.display().to_string())?;
            let mut trust = TrustStore::new();
            trust.insert(key)?;
            (trust, Some(key_id))
        }
        // clap requires one of the two.
        (None, None) => (TrustStore::new(), None),
    };

    let verdict = match (&detached, detached_key_id) {
        (Some(text), Some(key_id)) => {
            // Tools wrap base64 at 64 or 76 columns; the signature itself has no whitespace.
            let value: String = String::from_utf8_lossy(text)
                .chars()
                .filter(|c| !c.is_ascii_whitespace())
                .collect();
            // A detached signature carries no algorithm: it is the trusted key's. When the key
            // id is not trusted the verdict is UnknownKey, whichever algorithm is assumed here.
            let algorithm = trust
                .get(&key_id)
                .map(TrustedKey::algorithm)
                .or(spec.signature.as_ref().map(|s| s.algorithm))
                .unwrap_or(crate::api::SignatureAlgorithm::EcdsaP256Sha256);
            let signature = ReleaseSignature {
                key_id,
                algorithm,
                value,
            };
            release::verify_signature(spec, &signature, &trust)
        }
        _ => release::verify(spec, &trust),
    };

    match verdict {
        Verdict::Certified { key_id } => {
            // A detached signature carries no algorithm: it is the trusted key's. When the key
            // id is not trusted the verdict is UnknownKey, whichever algorithm is assumed here.
            let algorithm = trust
                .get(&key_id)
                .map(|k| format!(" ({})", release::algorithm_name(k.algorithm())))
                .unwrap_or_default();
            let line = format!(
                "{}: release {} ({}) is certified by trusted key {key_id:?}{algorithm}\n",
                release::CERTIFIED_REASON,
                spec.version,
                spec.channel
            );
            write_stdout(line.as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        Verdict::NotCertified { reason, message } => {
            eprintln!("NOT CERTIFIED ({reason}): {message}");
            Ok(ExitCode::from(EXIT_NOT_CERTIFIED))
        }
    }
}

/// What of a release read from a file must be admissible.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Admit {
    AsWritten,
    /// For signing: the signature it carries is about to be replaced.
    WithoutSignature,
}

/// One ComponentRelease read from YAML: typed spec for the crypto, raw value so that signing
/// writes back everything else (metadata, status, fields this version does not know) unchanged.
struct ReleaseDocument {
    path: String,
    raw: serde_json::Value,
    spec: ComponentReleaseSpec,
}

impl ReleaseDocument {
    /// Reads the release and admits it as the API server would (strict field validation,
    /// defaults, CEL) before anything else looks at it.
    fn read(path: &Path, admit: Admit) -> Result<Self, ReleaseCliError> {
        let text = String::from_utf8(read(path)?).map_err(|e| ReleaseCliError::NotARelease {
            path: path.display().to_string(),
            detail: format!("not UTF-8 text: {e}"),
        })?;
        let path = display(path);
        let not_a_release = |detail: String| ReleaseCliError::NotARelease {
            path: path.clone(),
            detail,
        };
        let mut docs: Vec<serde_json::Value> =
            yaml::from_multi_doc(&text).map_err(|source| ReleaseCliError::Yaml {
                path: path.clone(),
                source: Box::new(source),
            })?;
        if docs.len() != 1 {
            return Err(not_a_release(format!(
                "expected exactly one YAML document (a ComponentRelease), found {}",
                docs.len()
            )));
        }
        let raw = docs.remove(0);
        let api_version = format!("{GROUP}/{VERSION}");
        if raw["apiVersion"] != api_version.as_str() || raw["kind"] != "ComponentRelease" {
            return Err(not_a_release(format!(
                "expected apiVersion {api_version} and kind ComponentRelease, found {} {}",
                raw["apiVersion"], raw["kind"]
            )));
        }
        let mut candidate = raw.clone();
        if admit == Admit::WithoutSignature
            && let Some(spec) = candidate.get_mut("spec").and_then(|s| s.as_object_mut())
        {
            spec.remove("signature");
        }
        admission::admit(&candidate).map_err(|source| ReleaseCliError::Refused {
            path: path.clone(),
            source,
        })?;
        let release: ComponentRelease = serde_json::from_value(raw.clone())
            .map_err(|e| not_a_release(format!("not a valid ComponentRelease: {e}")))?;
        Ok(Self {
            path,
            raw,
            spec: release.spec,
        })
    }

    /// Admits the document as it is now (after signing) as the API server would.
    fn admit(&self) -> Result<(), ReleaseCliError> {
        admission::admit(&self.raw)
            .map(drop)
            .map_err(|source| ReleaseCliError::Refused {
                path: self.path.clone(),
                source,
            })
    }

    fn set_signature(&mut self, signature: &ReleaseSignature) -> Result<(), ReleaseCliError> {
        let value = serde_json::to_value(signature).map_err(|e| self.yaml_error(e.into()))?;
        match self.raw.get_mut("spec").and_then(|s| s.as_object_mut()) {
            Some(spec) => {
                spec.insert("signature".to_string(), value);
                Ok(())
            }
            None => Err(ReleaseCliError::NotARelease {
                path: self.path.clone(),
                detail: "spec is not a mapping".into(),
            }),
        }
    }

    fn not_canonical(&self, source: CanonicalError) -> ReleaseCliError {
        ReleaseCliError::NotCanonical {
            path: self.path.clone(),
            source,
        }
    }

    fn yaml_error(&self, source: YamlError) -> ReleaseCliError {
        ReleaseCliError::Yaml {
            path: self.path.clone(),
            source: Box::new(source),
        }
    }
}

fn display(path: &Path) -> String {
    if path == Path::new("-") {
        "standard input".to_string()
    } else {
        path.display().to_string()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, ReleaseCliError> {
    let err = |source| ReleaseCliError::Read {
        path: display(path),
        source,
    };
    if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf).map_err(err)?;
        Ok(buf)
    } else {
        std::fs::read(path).map_err(err)
    }
}

fn write_stdout(bytes: &[u8]) -> Result<(), ReleaseCliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|source| ReleaseCliError::Write {
            path: "standard output".into(),
            source,
        })
}
