//! A throw-away PostgreSQL server for the services' store tests (feature `test-postgres`, a
//! dev-dependency only): `initdb` in a temp directory, started on a
//! free loopback port with TLS (a certificate from a test CA, as CloudNativePG's server has one
//! from the cluster's CA) and password authentication (`scram-sha-256`, CloudNativePG's default
//! pg_hba rule), stopped and removed on drop.
//!
//! PostgreSQL refuses to run as root, and CI runs as root: then the server runs as the
//! `postgres` user (created by Debian's package) through `runuser`. Without the binaries the
//! caller skips with the reason, except under `CI=true`, where [`server_or_skip`] panics so a CI
//! machine without PostgreSQL cannot pass silently (as the Chromium tests do).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

pub const USER: &str = "miracolix";
pub const PASSWORD: &str = "miracolix-test-password";

pub struct PgServer {
    bin: PathBuf,
    dir: PathBuf,
    as_postgres: bool,
    pub port: u16,
    /// PEM of the CA that signed the server's certificate (the `<cluster>-ca` Secret's ca.crt).
    pub ca_file: PathBuf,
}

/// Debian installs the server under /usr/lib/postgresql/<major>/bin, off PATH; the newest wins.
fn bin_dir() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((major, bin))
        })
        .collect();
    found.sort();
    if let Some((_, bin)) = found.pop() {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|p| p.join("initdb").is_file() && p.join("pg_ctl").is_file())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl PgServer {
    fn run(&self, program: &str, args: &[&str]) -> Result<Output, String> {
        let exe = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd
            .args(args)
            .output()
            .map_err(|e| format!("{}: {e}", exe.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{program} {args:?} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(out)
    }

    /// `Err` says why there is no server (the caller decides whether that skips or fails).
    pub fn start() -> Result<Self, String> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let bin = bin_dir().ok_or("PostgreSQL's initdb was not found (Debian package postgresql; `make tools` installs it)")?;
        let dir = std::env::temp_dir().join(format!(
            "miracolix-pg-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let as_postgres = is_root();
        let server = Self {
            bin,
            dir: dir.clone(),
            as_postgres,
            port: free_port(),
            ca_file: dir.join("ca.crt"),
        };
        // With the binaries there, a server that does not start is a failure, not a skip.
        if let Err(e) = server.init() {
            panic!("the PostgreSQL test server did not start: {e}");
        }
        Ok(server)
    }

    fn init(&self) -> Result<(), String> {
        let ca = {
            let mut params =
                rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, "test cluster CA");
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params.key_usages = vec![
                rcgen::KeyUsagePurpose::KeyCertSign,
                rcgen::KeyUsagePurpose::CrlSign,
            ];
            rcgen::CertifiedIssuer::self_signed(
                params,
                rcgen::KeyPair::generate().map_err(|e| e.to_string())?,
            )
            .map_err(|e| e.to_string())?
        };
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .map_err(|e| e.to_string())?;
        let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
        let cert = params.signed_by(&key, &ca).map_err(|e| e.to_string())?;
        let write = |name: &str, text: String| {
            std::fs::write(self.dir.join(name), text).map_err(|e| format!("{name}: {e}"))
        };
        write("ca.crt", ca.pem())?;
        write("server.crt", cert.pem())?;
        write("server.key", key.serialize_pem())?;
        write("pwfile", format!("{PASSWORD}\n"))?;
        let data = self.dir.join("data");
        if self.as_postgres {
            let out = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&self.dir)
                .output()
                .map_err(|e| format!("chown: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "chown postgres {}: {}",
                    self.dir.display(),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
        // The key must not be readable by others, or the server refuses it.
        set_mode(&self.dir.join("server.key"), 0o600)?;
        let d = |p: &Path| p.display().to_string();
        self.run(
            "initdb",
            &[
                "-D",
                &d(&data),
                "-U",
                USER,
                "--pwfile",
                &d(&self.dir.join("pwfile")),
                "-A",
                "scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )?;
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c ssl=on -c ssl_cert_file={} -c ssl_key_file={} -c fsync=off",
            self.port,
            d(&self.dir),
            d(&self.dir.join("server.crt")),
            d(&self.dir.join("server.key"))
        );
        // -w -t 60: pg_ctl waits until the server accepts connections, at most 60 s.
        self.run(
            "pg_ctl",
            &[
                "-D",
                &d(&data),
                "-o",
                &options,
                "-l",
                &d(&self.dir.join("log")),
                "-w",
                "-t",
                "60",
                "start",
            ],
        )
        .map_err(|e| {
            let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
            format!("{e}\nserver log:\n{log}")
        })?;
        Ok(())
    }

    /// A fresh database on the server (each test its own, so tests do not share rows). Callable
    /// from a tokio test too (the synchronous client runs off the runtime).
    pub fn database(&self, name: &str) -> String {
        let port = self.port;
        crate::pg::off_runtime(|| {
            let mut client = postgres::Config::new()
                .host("127.0.0.1")
                .port(port)
                .user(USER)
                .password(PASSWORD)
                .dbname("postgres")
                .connect(postgres::NoTls)
                .expect("connect to create a database");
            client
                .batch_execute(&format!("CREATE DATABASE \"{name}\""))
                .expect("create database");
        });
        self.url(name)
    }

    /// A plain connection to `database` as the owner, for a test to look at or prepare the
    /// tables behind the store's back (call it off the async runtime).
    pub fn admin(&self, database: &str) -> postgres::Client {
        postgres::Client::connect(
            &format!("{}?sslmode=disable", self.url(database)),
            postgres::NoTls,
        )
        .expect("admin connection")
    }

    /// The URL as CloudNativePG's `-app` Secret writes it: no sslmode.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgresql://{USER}:{PASSWORD}@localhost:{}/{database}",
            self.port
        )
    }
}

/// The schema versions recorded in `versions_table`, in order.
pub fn applied_versions(client: &mut postgres::Client, versions_table: &str) -> Vec<i32> {
    client
        .query(
            &format!("SELECT version FROM {versions_table} ORDER BY version"),
            &[],
        )
        .expect("versions")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {}: {e}", path.display()))
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let data = self.dir.join("data").display().to_string();
        let _ = self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The server, or `None` with the reason printed; under `CI=true` a missing server fails.
pub fn server_or_skip() -> Option<PgServer> {
    match PgServer::start() {
        Ok(s) => Some(s),
        Err(reason) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI=true but no PostgreSQL server could be started: {reason}");
            }
            eprintln!("skipping the PostgreSQL backend: {reason}");
            None
        }
    }
}
