//! Fault injection, configured at runtime through [`super::TestApiServer::set_faults`].

use std::time::Duration;

use super::status::ApiError;

/// Which error an injected write failure produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultCode {
    /// 500 InternalError.
    Internal,
    /// 429 TooManyRequests with `Retry-After: 1`.
    TooManyRequests,
    /// 409 Conflict (as on a stale resourceVersion).
    Conflict,
    /// 403 Forbidden, as for a request the client's RBAC does not allow.
    Forbidden,
    /// 504 Timeout, as kube-apiserver's request-timeout filter answers a request that took too
    /// long (`apierrors.NewTimeoutError`, reason `Timeout`, with `Retry-After`).
    Timeout,
}

/// The errors a busy or failing API server answers, one drawn per injected fault by
/// [`Faults::request_error_rate`].
pub const TRANSIENT: [FaultCode; 4] = [
    FaultCode::Internal,
    FaultCode::TooManyRequests,
    FaultCode::Conflict,
    FaultCode::Timeout,
];

impl FaultCode {
    fn error(self) -> ApiError {
        match self {
            Self::Internal => ApiError::internal("injected fault: internal error"),
            Self::TooManyRequests => ApiError::too_many_requests(),
            Self::Conflict => ApiError::new(
                409,
                "Conflict",
                "injected fault: the object has been modified; please apply your changes to the latest version and try again",
            ),
            Self::Forbidden => ApiError::new(
                403,
                "Forbidden",
                "injected fault: forbidden: the client is not allowed to do this",
            ),
            Self::Timeout => ApiError::timeout(
                "injected fault: the server was unable to return a response in the time allotted, but may still be processing the request",
            ),
        }
    }
}

/// Refuses every request of one verb on one resource, reads included: a client without the
/// RBAC for it, or an admission webhook that says no.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// As in [`RequestRecord::verb`]: `get`, `list`, `patch`, `delete`, ...
    pub verb: String,
    /// The plural, e.g. `deployments`.
    pub resource: String,
    /// Empty for the main resource, else e.g. `status`.
    pub subresource: String,
    pub code: FaultCode,
}

/// Faults applied to requests. The default injects nothing.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Fail every n-th write (create, update, patch, delete), counting from 1.
    pub fail_every_nth_write: Option<(u64, FaultCode)>,
    /// Fail writes with this probability, drawn from a generator seeded with `seed`, so a
    /// failing run can be replayed.
    pub write_error_rate: Option<(f64, FaultCode)>,
    /// Fail any request but a watch (reads and writes) with this probability, with an error
    /// drawn from [`TRANSIENT`], from the generator seeded with `seed`.
    pub request_error_rate: Option<f64>,
    /// Only requests whose user agent contains this are failed by `request_error_rate` (empty:
    /// every client), so a test's own reads stay reliable.
    pub only_user_agent: String,
    pub seed: u64,
    /// Requests refused by verb and resource.
    pub refusals: Vec<Refusal>,
    /// Added before every response.
    pub latency: Duration,
    writes: u64,
    rng: u64,
}

impl Faults {
    pub fn every_nth_write(n: u64, code: FaultCode) -> Self {
        Self {
            fail_every_nth_write: Some((n.max(1), code)),
            ..Self::default()
        }
    }

    pub fn error_rate(rate: f64, code: FaultCode, seed: u64) -> Self {
        Self {
            write_error_rate: Some((rate, code)),
            seed,
            ..Self::default()
        }
    }

    /// Fails `rate` of the requests of clients whose user agent contains `user_agent` (watches
    /// aside: see `drop_watches` and `expire_watches`) with a 500, 429, 409 or 504, drawn from a
    /// generator seeded with `seed`.
    pub fn transient_errors(rate: f64, user_agent: &str, seed: u64) -> Self {
        Self {
            request_error_rate: Some(rate),
            only_user_agent: user_agent.to_string(),
            seed,
            ..Self::default()
        }
    }

    /// Refuses `verb` on `resource` (`resource/subresource` for a subresource) with `code`.
    #[must_use]
    pub fn refuse(mut self, verb: &str, resource: &str, code: FaultCode) -> Self {
        let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
        self.refusals.push(Refusal {
            verb: verb.to_string(),
            resource: resource.to_string(),
            subresource: subresource.to_string(),
            code,
        });
        self
    }

    pub fn latency(latency: Duration) -> Self {
        Self {
            latency,
            ..Self::default()
        }
    }

    /// xorshift64*: deterministic and dependency-free.
    fn next_f64(&mut self) -> f64 {
        if self.rng == 0 {
            self.rng = self.seed ^ 0x9E37_79B9_7F4A_7C15;
            if self.rng == 0 {
                self.rng = 1;
            }
        }
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Decides whether this request fails: a matching refusal, else the write faults.
    pub fn on_request(&mut self, r: &RequestRecord) -> Option<ApiError> {
        let refused = self.refusals.iter().find(|f| {
            f.verb == r.verb && f.resource == r.resource && f.subresource == r.subresource
        });
        if let Some(f) = refused {
            return Some(f.code.error());
        }
        if let Some(rate) = self.request_error_rate
            && r.verb != "watch"
            && r.user_agent.contains(self.only_user_agent.as_str())
            && self.next_f64() < rate
        {
            // The fraction scaled up picks one of the codes: uniform, and replayable.
            let pick = (self.next_f64() * TRANSIENT.len() as f64) as usize;
            return Some(TRANSIENT[pick.min(TRANSIENT.len() - 1)].error());
        }
        if r.is_write() { self.on_write() } else { None }
    }

    /// Decides whether this write fails.
    pub fn on_write(&mut self) -> Option<ApiError> {
        self.writes += 1;
        if let Some((n, code)) = self.fail_every_nth_write
            && self.writes.is_multiple_of(n)
        {
            return Some(code.error());
        }
        if let Some((rate, code)) = self.write_error_rate
            && self.next_f64() < rate
        {
            return Some(code.error());
        }
        None
    }
}

/// One served request, for tests that prove what a client did (e.g. which verbs its RBAC
/// needs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`,
    /// or the HTTP method for non-resource paths.
    pub verb: String,
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    pub user_agent: String,
    /// The authenticated user's name (empty when authentication failed).
    pub user: String,
    /// For patches: the content type (tells apply from merge patches).
    pub patch_type: String,
    pub field_manager: String,
    pub path: String,
    pub code: u16,
    /// A server-side apply of an object that did not exist: authorized as `create` as well as
    /// `patch` (kube-apiserver's patch handler checks `create` before an apply creates).
    pub apply_creates: bool,
}

impl RequestRecord {
    pub fn is_write(&self) -> bool {
        matches!(
            self.verb.as_str(),
            "create" | "update" | "patch" | "delete" | "deletecollection"
        )
    }
}
