//! `miracolix-operator release canonicalize|fingerprint|sign|verify|revoke|normalize-signature`:
//! the release manager's tools.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;

use base64::Engine as _;

use super::EXIT_NOT_CERTIFIED;
use crate::admission::{self, AdmissionError};
use crate::api::{
    ComponentRelease, ComponentReleaseSpec, GROUP, ReleaseFormat, ReleaseRevocation,
    ReleaseRevocationSpec, ReleaseSignature, VERSION,
};
use crate::release::plan::{self, declared_format};
use crate::release::{
    self, CanonicalError, SignError, SigningKey, TrustError, TrustStore, TrustedKey, Verdict,
};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
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
    /// Print exactly the bytes a signature covers: a ComponentRelease in the format its
    /// signature declares (unsigned: miracolix-release-v2), or a ReleaseRevocation.
    Canonicalize(CanonicalizeArgs),
    /// Print a release's fingerprint: the SHA-256 of its signed canonical content, which
    /// identifies it (status, allow-downgrade annotation, revocations).
    Fingerprint(FingerprintArgs),
    /// Sign a ComponentRelease (format miracolix-release-v2) or a ReleaseRevocation.
    Sign(SignArgs),
    /// Verify the signatures of a ComponentRelease or ReleaseRevocation. Exit status 0 only
    /// when it is certified, 1 when it is not (the reason is printed), 2 when the input cannot
    /// be read or is refused by the CRD.
    Verify(VerifyArgs),
    /// Write a signed ReleaseRevocation of releases, by fingerprint.
    Revoke(RevokeArgs),
    /// Rewrite an ECDSA signature (base64 DER, e.g. from openssl or cosign) into the low-S
    /// form the operator accepts.
    NormalizeSignature(NormalizeArgs),
    /// Show which release every DizSite runs, per kubeconfig context, or every registered site
    /// from the consortium hub's matrix (`--hub`). Exit status 0 when every source answered, 3
    /// when a context or the hub is unreachable (the rest is still printed), 2 on an error.
    Status(super::release_status::StatusArgs),
}

/// `--format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    V1,
    V2,
}

impl From<FormatArg> for ReleaseFormat {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::V1 => ReleaseFormat::V1,
            FormatArg::V2 => ReleaseFormat::V2,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct CanonicalizeArgs {
    /// The ComponentRelease or ReleaseRevocation YAML file (`-` for standard input).
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// Encoding of a ComponentRelease (default: the one its first signature declares, v2 when
    /// unsigned).
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
}

#[derive(Debug, clap::Args)]
pub struct FingerprintArgs {
    /// The ComponentRelease YAML file (`-` for standard input).
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// Encoding to fingerprint (default: the one its first signature declares, v2 when
    /// unsigned).
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
}

#[derive(Debug, clap::Args)]
pub struct SignArgs {
    /// The ComponentRelease or ReleaseRevocation YAML file (`-` for standard input).
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// PEM private key: PKCS#8 (ECDSA P-256 or Ed25519) or SEC1 `EC PRIVATE KEY` (P-256).
    #[arg(long)]
    pub key: PathBuf,
    /// The key's id among the operator's trusted keys.
    #[arg(long)]
    pub key_id: String,
    /// Write the signed document here instead of standard output (may be the input file).
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    /// Print only the `signature:` block (or with --add the `signatures:` list), to paste
    /// under `spec:` of a hand-maintained file whose comments a rewrite would lose.
    #[arg(long, conflicts_with = "output")]
    pub signature_only: bool,
    /// Add the signature to `spec.signatures` (k-of-n) instead of replacing `spec.signature`.
    #[arg(long)]
    pub add: bool,
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The ComponentRelease or ReleaseRevocation YAML file (`-` for standard input).
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
    /// or `cosign sign-blob`) over the v1 or, with `--format v2`, the v2 encoding, to verify
    /// instead of the signatures in the file.
    #[arg(long)]
    pub signature: Option<PathBuf>,
    /// Encoding a detached `--signature` covers (default: v1, as older tools signed).
    #[arg(long, value_enum, requires = "signature")]
    pub format: Option<FormatArg>,
    /// How many distinct trusted keys must have signed (the operator's
    /// `--signature-threshold`).
    #[arg(long, default_value_t = 1)]
    pub threshold: usize,
}

#[derive(Debug, clap::Args)]
pub struct RevokeArgs {
    /// Name of the ReleaseRevocation object.
    #[arg(long)]
    pub name: String,
    /// Fingerprint of a release to revoke (`release fingerprint`); repeat for several.
    #[arg(long = "fingerprint", required = true)]
    pub fingerprints: Vec<String>,
    /// Why, for site admins (printable ASCII).
    #[arg(long)]
    pub reason: String,
    /// Sites leave the revoked releases at once instead of at their next maintenance window.
    #[arg(long)]
    pub immediate: bool,
    /// PEM private key.
    #[arg(long)]
    pub key: PathBuf,
    /// The key's id among the operator's trusted keys.
    #[arg(long)]
    pub key_id: String,
    /// Write here instead of standard output.
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct NormalizeArgs {
    /// Base64 DER ECDSA signature (`-` for standard input).
    #[arg(long, default_value = "-")]
    pub signature: PathBuf,
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
    #[error("{path}: {what} applies to a ComponentRelease, not a ReleaseRevocation")]
    NotForRevocations { path: String, what: &'static str },
    #[error("{0}: not base64")]
    NotBase64(String),
}

pub fn run(args: &ReleaseArgs) -> Result<ExitCode, ReleaseCliError> {
    match &args.command {
        ReleaseCommand::Canonicalize(args) => canonicalize(args),
        ReleaseCommand::Fingerprint(args) => fingerprint(args),
        ReleaseCommand::Sign(args) => sign(args),
        ReleaseCommand::Verify(args) => verify(args),
        ReleaseCommand::Revoke(args) => revoke(args),
        ReleaseCommand::NormalizeSignature(args) => normalize(args),
        ReleaseCommand::Status(args) => Ok(super::release_status::run(args)?),
    }
}

fn canonicalize(args: &CanonicalizeArgs) -> Result<ExitCode, ReleaseCliError> {
    let doc = Document::read(&args.file, Admit::AsWritten)?;
    let bytes = match &doc.spec {
        Spec::Release(spec) => {
            let format = args
                .format
                .map_or_else(|| declared_format(spec), Into::into);
            release::canonicalize(spec, format)
        }
        Spec::Revocation(spec) => release::canonicalize_revocation(spec),
    }
    .map_err(|source| doc.not_canonical(source))?;
    write_stdout(&bytes)?;
    Ok(ExitCode::SUCCESS)
}

fn fingerprint(args: &FingerprintArgs) -> Result<ExitCode, ReleaseCliError> {
    let doc = Document::read(&args.file, Admit::AsWritten)?;
    let Spec::Release(spec) = &doc.spec else {
        return Err(ReleaseCliError::NotForRevocations {
            path: doc.path.clone(),
            what: "a fingerprint",
        });
    };
    let format = args
        .format
        .map_or_else(|| declared_format(spec), Into::into);
    let fp = plan::fingerprint(spec, format).map_err(|source| doc.not_canonical(source))?;
    write_stdout(format!("{fp}\n").as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

fn sign(args: &SignArgs) -> Result<ExitCode, ReleaseCliError> {
    let mut doc = Document::read(&args.file, Admit::WithoutSignature)?;
    let key_pem = read(&args.key)?;
    let key = SigningKey::from_pem(&key_pem, &args.key.display().to_string())?;
    let signature = match &doc.spec {
        Spec::Release(spec) => release::sign_release(spec, &key, &args.key_id),
        Spec::Revocation(spec) => release::sign_revocation(spec, &key, &args.key_id),
    }
    .map_err(|e| match e {
        SignError::NotCanonical(source) => doc.not_canonical(source),
        other => other.into(),
    })?;
    doc.set_signature(&signature, args.add)?;
    // Checked as signed, not as read: the signature being replaced does not matter, the new one
    // is part of what a cluster admits (a key id too long for the CRD, say). Nothing is
    // certified that no cluster would take.
    doc.admit()?;
    let text = if args.signature_only {
        let spec = &doc.raw["spec"];
        let block = if args.add {
            serde_json::json!({ "signatures": spec["signatures"] })
        } else {
            serde_json::json!({ "signature": spec["signature"] })
        };
        yaml::to_string(&block).map_err(|source| doc.yaml_error(source))?
    } else {
        yaml::to_string(&doc.raw).map_err(|source| doc.yaml_error(source))?
    };
    write_to(args.output.as_deref(), &text)?;
    Ok(ExitCode::SUCCESS)
}

fn revoke(args: &RevokeArgs) -> Result<ExitCode, ReleaseCliError> {
    let mut spec = ReleaseRevocationSpec {
        fingerprints: args.fingerprints.clone(),
        reason: args.reason.clone(),
        immediate: args.immediate,
        signature: None,
        signatures: Vec::new(),
    };
    let key_pem = read(&args.key)?;
    let key = SigningKey::from_pem(&key_pem, &args.key.display().to_string())?;
    spec.signature = Some(release::sign_revocation(&spec, &key, &args.key_id).map_err(
        |e| match e {
            SignError::NotCanonical(source) => ReleaseCliError::NotCanonical {
                path: "the revocation".into(),
                source,
            },
            other => other.into(),
        },
    )?);
    let revocation = ReleaseRevocation::new(&args.name, spec);
    let mut value = serde_json::to_value(&revocation).map_err(|e| ReleaseCliError::Yaml {
        path: "the revocation".into(),
        source: Box::new(e.into()),
    })?;
    if let Some(meta) = value.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        meta.retain(|k, _| k == "name");
    }
    // Nothing is signed that no cluster would take (a name that is not a DNS name, say).
    admission::admit(&value).map_err(|source| ReleaseCliError::Refused {
        path: "the revocation".into(),
        source,
    })?;
    let text = yaml::to_string(&value).map_err(|source| ReleaseCliError::Yaml {
        path: "the revocation".into(),
        source: Box::new(source),
    })?;
    write_to(args.output.as_deref(), &text)?;
    Ok(ExitCode::SUCCESS)
}

fn normalize(args: &NormalizeArgs) -> Result<ExitCode, ReleaseCliError> {
    let text: String = String::from_utf8_lossy(&read(&args.signature)?)
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let der = B64
        .decode(&text)
        .map_err(|_| ReleaseCliError::NotBase64(display(&args.signature)))?;
    let low = release::normalize_low_s(&der)?;
    write_stdout(format!("{}\n", B64.encode(low)).as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

fn verify(args: &VerifyArgs) -> Result<ExitCode, ReleaseCliError> {
    // A document no cluster admits is not a verdict's business: it is broken input.
    let doc = Document::read(&args.file, Admit::AsWritten)?;
    let detached = match &args.signature {
        Some(path) => Some(read(path)?),
        None => None,
    };
    let named_key = doc.first_signature().map(|s| s.key_id.clone());

    let (trust, detached_key_id) = match (&args.trust_dir, &args.key) {
        (Some(dir), _) => {
            let trust = TrustStore::from_dir(dir)?;
            match (&detached, &args.key_id) {
                (Some(_), None) => return Err(ReleaseCliError::DetachedNeedsKeyId),
                (_, id) => (trust, id.clone()),
            }
        }
        (None, Some(key_path)) => {
            let key_id = match (&args.key_id, &detached, named_key) {
                (Some(id), _, _) => id.clone(),
                (None, Some(_), _) => DETACHED_KEY_ID.to_string(),
                (None, None, Some(id)) => id,
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

    let verdict = match (&doc.spec, &detached, detached_key_id) {
        (Spec::Release(spec), Some(text), Some(key_id)) => {
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
                format: args.format.map(Into::into),
                value,
            };
            release::verify_signature(spec, &signature, &trust)
        }
        (Spec::Revocation(_), Some(_), _) => {
            return Err(ReleaseCliError::NotForRevocations {
                path: doc.path.clone(),
                what: "a detached --signature",
            });
        }
        (Spec::Release(spec), _, _) => release::verify_with_threshold(spec, &trust, args.threshold),
        (Spec::Revocation(spec), _, _) => release::verify_revocation(spec, &trust, args.threshold),
    };

    match verdict {
        Verdict::Certified { key_ids, format } => {
            let keys = key_ids
                .iter()
                .map(|id| {
                    let algorithm = trust
                        .get(id)
                        .map(|k| format!(" ({})", release::algorithm_name(k.algorithm())))
                        .unwrap_or_default();
                    format!("{id:?}{algorithm}")
                })
                .collect::<Vec<_>>()
                .join(", ");
            let what = match &doc.spec {
                Spec::Release(spec) => format!(
                    "release {} ({}, format {format})",
                    spec.version, spec.channel
                ),
                Spec::Revocation(spec) => {
                    format!("revocation of {} release(s)", spec.fingerprints.len())
                }
            };
            let line = format!(
                "{}: {what} is certified by trusted key {keys}\n",
                release::CERTIFIED_REASON
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

/// What of a document read from a file must be admissible.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    AsWritten,
    /// For signing: the signature it carries is about to be replaced.
    WithoutSignature,
}

pub(crate) enum Spec {
    Release(ComponentReleaseSpec),
    Revocation(ReleaseRevocationSpec),
}

/// One ComponentRelease or ReleaseRevocation read from YAML: typed spec for the crypto, raw
/// value so that signing writes back everything else (metadata, status, fields this version
/// does not know) unchanged.
pub(crate) struct Document {
    pub(crate) path: String,
    pub(crate) raw: serde_json::Value,
    pub(crate) spec: Spec,
}

impl Document {
    /// Reads the document and admits it as the API server would (strict field validation,
    /// defaults, CEL) before anything else looks at it.
    fn read(path: &Path, admit: Admit) -> Result<Self, ReleaseCliError> {
        Self::parse(display(path), read(path)?, admit)
    }

    /// The same for bytes read elsewhere (the hub's feed directory); `path` names them in errors.
    pub(crate) fn parse(
        path: String,
        bytes: Vec<u8>,
        admit: Admit,
    ) -> Result<Self, ReleaseCliError> {
        let text = String::from_utf8(bytes).map_err(|e| ReleaseCliError::NotARelease {
            path: path.clone(),
            detail: format!("not UTF-8 text: {e}"),
        })?;
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
        let spec = match (
            raw["apiVersion"] == api_version.as_str(),
            raw["kind"].as_str(),
        ) {
            (true, Some("ComponentRelease")) => None,
            (true, Some("ReleaseRevocation")) => Some(()),
            _ => {
                return Err(not_a_release(format!(
                    "expected apiVersion {api_version} and kind ComponentRelease (or \
                     ReleaseRevocation), found {} {}",
                    raw["apiVersion"], raw["kind"]
                )));
            }
        };
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
        let spec = match spec {
            None => Spec::Release(
                serde_json::from_value::<ComponentRelease>(raw.clone())
                    .map_err(|e| not_a_release(format!("not a valid ComponentRelease: {e}")))?
                    .spec,
            ),
            Some(()) => Spec::Revocation(
                serde_json::from_value::<ReleaseRevocation>(raw.clone())
                    .map_err(|e| not_a_release(format!("not a valid ReleaseRevocation: {e}")))?
                    .spec,
            ),
        };
        Ok(Self { path, raw, spec })
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

    fn first_signature(&self) -> Option<&ReleaseSignature> {
        match &self.spec {
            Spec::Release(s) => s.all_signatures().next(),
            Spec::Revocation(s) => s.all_signatures().next(),
        }
    }

    fn set_signature(
        &mut self,
        signature: &ReleaseSignature,
        add: bool,
    ) -> Result<(), ReleaseCliError> {
        let value = serde_json::to_value(signature).map_err(|e| self.yaml_error(e.into()))?;
        let path = self.path.clone();
        let Some(spec) = self.raw.get_mut("spec").and_then(|s| s.as_object_mut()) else {
            return Err(ReleaseCliError::NotARelease {
                path,
                detail: "spec is not a mapping".into(),
            });
        };
        if add {
            let list = spec
                .entry("signatures")
                .or_insert_with(|| serde_json::Value::Array(Vec::new()));
            if let Some(list) = list.as_array_mut() {
                // Re-signing with the same key replaces that key's earlier signature.
                list.retain(|s| s["keyId"] != signature.key_id.as_str());
                list.push(value);
            }
        } else {
            spec.insert("signature".to_string(), value);
        }
        Ok(())
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

fn write_to(output: Option<&Path>, text: &str) -> Result<(), ReleaseCliError> {
    match output {
        Some(path) => std::fs::write(path, text).map_err(|source| ReleaseCliError::Write {
            path: path.display().to_string(),
            source,
        }),
        None => write_stdout(text.as_bytes()),
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
