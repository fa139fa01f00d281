//! The contracts of the project's own image (docs/image.md): one image, one binary, a program
//! per subcommand. The operator's Deployment runs `run` (the image's `CMD`); a
//! FeasibilityEndpoint's gate runs `gate` (`controller/feasibility/build.rs`). The facts are read
//! from this repository, so they are checked against the code by `contract_matches_the_code`
//! below rather than cited from upstream.

use super::contract::{Endpoint, ImageContract, ImageUser, Program, Read, Write, WriteKind};

/// The image repository the chart and the example releases pin.
pub const REPOSITORY: &str = "ghcr.io/miracum/miracolix-operator";
/// The image's `CMD`.
const DEFAULT_ARGS: &[&str] = &["run"];
/// What clap prints for a subcommand the binary does not have.
const UNKNOWN: &str = "error: unrecognized subcommand";

const USER: ImageUser = ImageUser {
    declared: "65532:65532",
    uid: Some(65532),
    gid: Some(65532),
    cite: "miracum/miracolix-operator:Dockerfile (USER 65532:65532)",
};

/// The directory the gate keeps `state.db` and `audit.jsonl` in (`--state-dir`'s default, and
/// what the controller sets).
pub const GATE_STATE_DIR: &str = "/var/lib/miracolix-gate";

/// The directory the inbox keeps its SQLite database in (`--database`'s default, and what the
/// controller mounts its data volume at).
pub const INBOX_DATA_DIR: &str = "/var/lib/miracolix-inbox";

pub const CONTRACTS: [ImageContract; 4] = [
    ImageContract {
        image: "miracolix-operator",
        repository: REPOSITORY,
        source: "miracum/miracolix-operator",
        program: Some(Program {
            args: &["run"],
            image_default_args: DEFAULT_ARGS,
            unknown_args_message: UNKNOWN,
            cite: "miracum/miracolix-operator:Dockerfile (ENTRYPOINT, CMD [\"run\"]); operator/src/cli/mod.rs",
        }),
        reads: &[],
        user: USER,
        // Everything it keeps is in the API server; the trusted keys are a read-only mount.
        writes: &[],
        // `--trusted-keys` is required, but as a flag (the chart's args), which this contract
        // model (environment variables) does not describe.
        required: &[],
        // --probe-address and --metrics-address defaults (operator/src/cli/run.rs).
        ports: &[8080, 9090],
        endpoints: &[
            Endpoint {
                path: "/livez",
                port: 8080,
                needs: None,
                cite: "operator/src/telemetry/mod.rs",
            },
            Endpoint {
                path: "/readyz",
                port: 8080,
                needs: None,
                cite: "operator/src/telemetry/mod.rs",
            },
        ],
        jvm: None,
    },
    ImageContract {
        image: "miracolix-gate",
        repository: REPOSITORY,
        source: "miracum/miracolix-operator",
        program: Some(Program {
            args: &["gate"],
            image_default_args: DEFAULT_ARGS,
            unknown_args_message: UNKNOWN,
            cite: "operator/src/cli/mod.rs (Command::Gate)",
        }),
        reads: &[
            Read {
                env: "GATE_CALLERS",
                references: &["tokens[].tokenFile", "oidc.jwksFile"],
                message: "gate: cannot read",
                cite: "gate/src/auth.rs (Authenticator::load)",
            },
            Read {
                env: "GATE_TLS_CERT",
                references: &[],
                message: "gate: cannot read",
                cite: "gate/src/tls.rs (acceptor_from_files)",
            },
            Read {
                env: "GATE_TLS_KEY",
                references: &[],
                message: "gate: cannot read",
                cite: "gate/src/tls.rs (acceptor_from_files)",
            },
            Read {
                env: "GATE_CLIENT_CA",
                references: &[],
                message: "gate: cannot read",
                cite: "gate/src/tls.rs (acceptor_from_files)",
            },
        ],
        user: USER,
        writes: &[Write {
            path: GATE_STATE_DIR,
            kind: WriteKind::Dir,
            why: "state.db (answer cache, budget, rate window) and the append-only audit.jsonl",
            cite: "gate/src/cli.rs (--state-dir)",
        }],
        required: &[
            super::contract::Required {
                name: "GATE_EXECUTOR_URL",
                secret: false,
                message: "error: the following required arguments were not provided: --executor-url <EXECUTOR_URL>",
                cite: "gate/src/cli.rs (GateArgs::executor_url, no default)",
            },
            super::contract::Required {
                name: "GATE_CALLERS",
                secret: false,
                message: "error: the following required arguments were not provided: --callers <CALLERS>",
                cite: "gate/src/cli.rs (GateArgs::callers, no default)",
            },
        ],
        // --listen, --ops-listen, --mtls-listen defaults (gate/src/cli.rs).
        ports: &[8080, 8081, 8443],
        endpoints: &[
            Endpoint {
                path: "/healthz",
                port: 8081,
                needs: None,
                cite: "gate/src/server.rs (Gate::ops)",
            },
            Endpoint {
                path: "/readyz",
                port: 8081,
                needs: None,
                cite: "gate/src/server.rs (Gate::ops)",
            },
            Endpoint {
                path: "/livez",
                port: 8081,
                needs: None,
                cite: "gate/src/server.rs (Gate::ops)",
            },
        ],
        jvm: None,
    },
    ImageContract {
        image: "miracolix-inbox",
        repository: REPOSITORY,
        source: "miracum/miracolix-operator",
        program: Some(Program {
            args: &["inbox"],
            image_default_args: DEFAULT_ARGS,
            unknown_args_message: UNKNOWN,
            cite: "operator/src/cli/mod.rs (Command::Inbox)",
        }),
        // Each read stops the inbox at start when the file is missing (inbox/src/cli.rs `read`,
        // config.rs `load`, notify.rs `read_secret`). The central office's keys are a directory
        // (at least one key), which this model of files does not describe.
        reads: &[
            Read {
                env: "INBOX_CONFIG",
                references: &[
                    "oidc.clientSecretFile",
                    "notifications[].webhook.tokenFile",
                    "smtp.usernameFile",
                    "smtp.passwordFile",
                ],
                message: "inbox: cannot read",
                cite: "inbox/src/config.rs (InboxConfig::load), inbox/src/cli.rs (run)",
            },
            Read {
                env: "INBOX_DECISION_KEY",
                references: &[],
                message: "inbox: cannot read",
                cite: "inbox/src/cli.rs (run: the decision-signing key)",
            },
            Read {
                env: "INBOX_SESSION_SECRET_FILE",
                references: &[],
                message: "inbox: cannot read",
                cite: "inbox/src/cli.rs (run: the session secret)",
            },
        ],
        user: USER,
        writes: &[Write {
            path: INBOX_DATA_DIR,
            kind: WriteKind::Dir,
            why: "inbox.db: proposals, votes, the audit trail and the outbox of decisions and notifications",
            cite: "inbox/src/cli.rs (--database default sqlite:///var/lib/miracolix-inbox/inbox.db)",
        }],
        // Every setting has a default (inbox/src/cli.rs).
        required: &[],
        // --listen and --ops-listen defaults (inbox/src/cli.rs).
        ports: &[8080, 8081],
        endpoints: &[
            Endpoint {
                path: "/healthz",
                port: 8081,
                needs: None,
                cite: "service/src/http.rs (ops), inbox/src/server.rs",
            },
            Endpoint {
                path: "/readyz",
                port: 8081,
                needs: None,
                cite: "inbox/src/server.rs (the database answers)",
            },
        ],
        jvm: None,
    },
    // The reporter of a DizSite with `spec.reporting` (catalog/reporter.rs): a CronJob's pod
    // that reads the site's key and exits. No ports, no endpoints, writes nothing.
    ImageContract {
        image: "miracolix-reporter",
        repository: REPOSITORY,
        source: "miracum/miracolix-operator",
        program: Some(Program {
            args: &["report"],
            image_default_args: DEFAULT_ARGS,
            unknown_args_message: UNKNOWN,
            cite: "operator/src/cli/mod.rs (Command::Report)",
        }),
        reads: &[
            Read {
                env: "REPORT_KEY_FILE",
                references: &[],
                message: "error: cannot read",
                cite: "operator/src/cli/report.rs (load_key)",
            },
            Read {
                env: "REPORT_KEY_ID_FILE",
                references: &[],
                message: "error: cannot read",
                cite: "operator/src/cli/report.rs (load_key)",
            },
            Read {
                env: "REPORT_HUB_CA",
                references: &[],
                message: "error: cannot read",
                cite: "operator/src/cli/report.rs (push)",
            },
        ],
        user: USER,
        writes: &[],
        required: &[
            super::contract::Required {
                name: "REPORT_SITE",
                secret: false,
                message: "error: --site (or its environment variable) is required",
                cite: "operator/src/cli/report.rs (push)",
            },
            super::contract::Required {
                name: "REPORT_HUB_URL",
                secret: false,
                message: "error: --hub-url (or its environment variable) is required",
                cite: "operator/src/cli/report.rs (push)",
            },
            super::contract::Required {
                name: "REPORT_BLAZE_URL",
                secret: false,
                message: "error: --blaze-url (or its environment variable) is required",
                cite: "operator/src/cli/report.rs (push)",
            },
        ],
        ports: &[],
        endpoints: &[],
        jvm: None,
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    /// The facts above are this repository's code: the subcommands exist, the gate's defaults
    /// are the ports and state directory the contract names, its required settings are
    /// required, and the ops listener serves the endpoints.
    #[test]
    fn contract_matches_the_code() {
        let gate = &CONTRACTS[1];
        let missing = crate::cli::Cli::try_parse_from(["miracolix-operator", "gate"])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        for r in gate.required {
            let flag = r
                .name
                .trim_start_matches("GATE_")
                .to_lowercase()
                .replace('_', "-");
            assert!(
                missing.contains(&format!("--{flag}")),
                "{}: {missing}",
                r.name
            );
        }
        let cli = crate::cli::Cli::try_parse_from([
            "miracolix-operator",
            "gate",
            "--executor-url=http://flare:8080",
            "--callers=/c.json",
        ])
        .expect("gate command line");
        let crate::cli::Command::Gate(args) = cli.command else {
            panic!("gate is not the gate")
        };
        assert_eq!(
            [
                args.listen.port(),
                args.ops_listen.port(),
                args.mtls_listen.port()
            ]
            .map(i32::from),
            [gate.ports[0], gate.ports[1], gate.ports[2]]
        );
        assert_eq!(args.state_dir.to_str(), Some(GATE_STATE_DIR));
        let run =
            crate::cli::Cli::try_parse_from(["miracolix-operator", "run", "--trusted-keys=/k"])
                .expect("run");
        assert!(matches!(run.command, crate::cli::Command::Run(_)));
        let unknown = crate::cli::Cli::try_parse_from(["miracolix-operator", "serve"])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(unknown.contains(UNKNOWN), "{unknown}");

        // The inbox: nothing required, its ports and its database under the data directory.
        let inbox = &CONTRACTS[2];
        let cli = crate::cli::Cli::try_parse_from(["miracolix-operator", "inbox"])
            .expect("inbox needs no flag");
        let crate::cli::Command::Inbox(args) = cli.command else {
            panic!("inbox is not the inbox")
        };
        assert!(inbox.required.is_empty());
        assert_eq!(
            [args.listen.port(), args.ops_listen.port()].map(i32::from),
            [inbox.ports[0], inbox.ports[1]]
        );
        assert!(
            args.database
                .starts_with(&format!("sqlite://{INBOX_DATA_DIR}/")),
            "{}",
            args.database
        );
        // The reporter: its required settings are the ones the command refuses to run without,
        // its reads are the command's file flags.
        let reporter = &CONTRACTS[3];
        let cli = crate::cli::Cli::try_parse_from(["miracolix-operator", "report"])
            .expect("report parses without flags");
        let crate::cli::Command::Report(args) = cli.command else {
            panic!("report is not the reporter")
        };
        for r in reporter.required {
            let flag = r
                .name
                .trim_start_matches("REPORT_")
                .to_lowercase()
                .replace('_', "-");
            assert!(r.message.contains(&format!("--{flag} ")), "{}", r.name);
        }
        assert!(
            args.push.site.is_none()
                && args.push.hub_url.is_none()
                && args.push.blaze_url.is_none()
        );
        let files: Vec<&str> = reporter.reads.iter().map(|r| r.env).collect();
        assert_eq!(
            files,
            ["REPORT_KEY_FILE", "REPORT_KEY_ID_FILE", "REPORT_HUB_CA"]
        );
        let reads: Vec<&str> = inbox.reads.iter().map(|r| r.env).collect();
        assert_eq!(
            reads,
            [
                "INBOX_CONFIG",
                "INBOX_DECISION_KEY",
                "INBOX_SESSION_SECRET_FILE"
            ]
        );
    }
}
