//! The per-site states of a proposal and the only transitions between them, as pure functions
//! (the states of the MII portal's location check, shared/docs/domain.md):
//!
//! ```text
//! DIZ_CHECK ──dizApprove──────────────▶ DIZ_APPROVED ─────────┐  UAC votes until the quorum:
//!    │      ──dizApproveWithConditions▶ DIZ_CONDITION_CHECK ──┤  uacApprove ──────────▶ UAC_APPROVED
//!    └─dizExclude (reason)─▶ REQUESTED_BUT_EXCLUDED            │  uacDecline (reasons) ▶ UAC_DECLINED
//!                                                             └─ uacApproveWithConditions ▶ CONDITIONAL_APPROVAL_PENDING
//! CONDITIONAL_APPROVAL_PENDING ──conditionsAccepted─▶ CONDITIONAL_APPROVAL_ACCEPTED
//!                              ──conditionsDeclined─▶ CONDITIONAL_APPROVAL_DECLINED (also when unanswered past the deadline)
//! ```
//!
//! Rules:
//! 1. Every transition not drawn above is illegal; [`transition`] answers with the allowed ones.
//! 2. The UAC decides when `quorum` votes are cast ([`tally`]): approval needs a strict majority of
//!    the cast votes; a tie or a majority of declines declines, with the decliners' reasons. Any
//!    approving vote with conditions makes the approval conditional, with those conditions.
//! 3. A member votes once per proposal; a second vote replaces the first while voting is open.
//!    Once the decision is taken no vote is accepted (409).
//! 4. The review deadline runs from receipt; a proposal the site has not decided past it is
//!    overdue ([`is_overdue`]); a reminder is due from two days before (or half the period, if
//!    shorter) ([`reminder_due`]).
//! 5. Conditions unanswered for a review period after the decision expire: the inbox records
//!    `conditionsDeclined` itself ([`conditions_expired`]).
//!
//! `NOT_REQUESTED` is never stored: a proposal not addressed to this site is refused at intake.
//! The contract states (`SIGNED_CONTRACT`, `RESEARCHER_{ACCEPTED,REJECTED}_CONTRACT`) follow the
//! decision at the central office and are not tracked by the site's inbox.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    DizCheck,
    DizApproved,
    DizConditionCheck,
    UacApproved,
    UacDeclined,
    ConditionalApprovalPending,
    ConditionalApprovalAccepted,
    ConditionalApprovalDeclined,
    RequestedButExcluded,
}

impl State {
    pub const ALL: [State; 9] = [
        State::DizCheck,
        State::DizApproved,
        State::DizConditionCheck,
        State::UacApproved,
        State::UacDeclined,
        State::ConditionalApprovalPending,
        State::ConditionalApprovalAccepted,
        State::ConditionalApprovalDeclined,
        State::RequestedButExcluded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::DizCheck => "DIZ_CHECK",
            State::DizApproved => "DIZ_APPROVED",
            State::DizConditionCheck => "DIZ_CONDITION_CHECK",
            State::UacApproved => "UAC_APPROVED",
            State::UacDeclined => "UAC_DECLINED",
            State::ConditionalApprovalPending => "CONDITIONAL_APPROVAL_PENDING",
            State::ConditionalApprovalAccepted => "CONDITIONAL_APPROVAL_ACCEPTED",
            State::ConditionalApprovalDeclined => "CONDITIONAL_APPROVAL_DECLINED",
            State::RequestedButExcluded => "REQUESTED_BUT_EXCLUDED",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The UAC is voting.
    pub fn voting_open(self) -> bool {
        matches!(self, State::DizApproved | State::DizConditionCheck)
    }

    /// Someone at the site still has to act (counts towards overdue).
    pub fn is_open(self) -> bool {
        matches!(
            self,
            State::DizCheck
                | State::DizApproved
                | State::DizConditionCheck
                | State::ConditionalApprovalPending
        )
    }

    /// The site itself still has to decide (counts towards overdue and reminders).
    pub fn awaits_site(self) -> bool {
        matches!(
            self,
            State::DizCheck | State::DizApproved | State::DizConditionCheck
        )
    }

    /// The site approves (with or without conditions): the decision carries the promised
    /// data amount.
    pub fn is_approval(self) -> bool {
        matches!(
            self,
            State::UacApproved
                | State::ConditionalApprovalPending
                | State::ConditionalApprovalAccepted
        )
    }

    /// Entering this state is a decision the central office is told about.
    pub fn is_reported(self) -> bool {
        !matches!(
            self,
            State::DizCheck | State::DizApproved | State::DizConditionCheck
        )
    }
}

/// What moves a proposal from one state to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    DizApprove,
    DizApproveWithConditions,
    DizExclude,
    UacApprove,
    UacApproveWithConditions,
    UacDecline,
    ConditionsAccepted,
    ConditionsDeclined,
}

impl Action {
    pub const ALL: [Action; 8] = [
        Action::DizApprove,
        Action::DizApproveWithConditions,
        Action::DizExclude,
        Action::UacApprove,
        Action::UacApproveWithConditions,
        Action::UacDecline,
        Action::ConditionsAccepted,
        Action::ConditionsDeclined,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::DizApprove => "dizApprove",
            Action::DizApproveWithConditions => "dizApproveWithConditions",
            Action::DizExclude => "dizExclude",
            Action::UacApprove => "uacApprove",
            Action::UacApproveWithConditions => "uacApproveWithConditions",
            Action::UacDecline => "uacDecline",
            Action::ConditionsAccepted => "conditionsAccepted",
            Action::ConditionsDeclined => "conditionsDeclined",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{action} is not allowed in {from}; allowed: {}", allowed_list(.allowed))]
pub struct Illegal {
    pub from: &'static str,
    pub action: &'static str,
    pub allowed: Vec<Action>,
}

fn allowed_list(allowed: &[Action]) -> String {
    if allowed.is_empty() {
        "none (final state)".into()
    } else {
        allowed
            .iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The one table of legal transitions.
fn next(from: State, action: Action) -> Option<State> {
    use Action as A;
    use State as S;
    match (from, action) {
        (S::DizCheck, A::DizApprove) => Some(S::DizApproved),
        (S::DizCheck, A::DizApproveWithConditions) => Some(S::DizConditionCheck),
        (S::DizCheck, A::DizExclude) => Some(S::RequestedButExcluded),
        (S::DizApproved | S::DizConditionCheck, A::UacApprove) => Some(S::UacApproved),
        (S::DizApproved | S::DizConditionCheck, A::UacApproveWithConditions) => {
            Some(S::ConditionalApprovalPending)
        }
        (S::DizApproved | S::DizConditionCheck, A::UacDecline) => Some(S::UacDeclined),
        (S::ConditionalApprovalPending, A::ConditionsAccepted) => {
            Some(S::ConditionalApprovalAccepted)
        }
        (S::ConditionalApprovalPending, A::ConditionsDeclined) => {
            Some(S::ConditionalApprovalDeclined)
        }
        _ => None,
    }
}

/// The state `action` leads to from any state it is legal in (each action has one target).
pub fn transition_target(action: Action) -> Option<State> {
    State::ALL.into_iter().find_map(|s| next(s, action))
}

/// The actions legal in `state`, in a fixed order.
pub fn allowed(state: State) -> Vec<Action> {
    Action::ALL
        .into_iter()
        .filter(|a| next(state, *a).is_some())
        .collect()
}

pub fn transition(from: State, action: Action) -> Result<State, Illegal> {
    next(from, action).ok_or_else(|| Illegal {
        from: from.as_str(),
        action: action.as_str(),
        allowed: allowed(from),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Choice {
    Approve,
    ApproveWithConditions,
    Decline,
}

impl Choice {
    pub fn as_str(self) -> &'static str {
        match self {
            Choice::Approve => "approve",
            Choice::ApproveWithConditions => "approveWithConditions",
            Choice::Decline => "decline",
        }
    }

    pub fn parse(s: &str) -> Option<Choice> {
        [
            Choice::Approve,
            Choice::ApproveWithConditions,
            Choice::Decline,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

/// One member's vote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Vote {
    pub member: String,
    pub choice: Choice,
    /// Set for `approveWithConditions` (mandatory there), empty otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<String>,
    /// Set for `decline` (mandatory there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VoteError {
    #[error("a decline needs a reason (field reason)")]
    ReasonMissing,
    #[error("an approval with conditions needs the conditions (field conditions)")]
    ConditionsMissing,
}

/// A vote's mandatory texts are present (and stray ones dropped).
pub fn check_vote(mut vote: Vote) -> Result<Vote, VoteError> {
    let filled = |s: &Option<String>| s.as_deref().is_some_and(|t| !t.trim().is_empty());
    match vote.choice {
        Choice::Decline if !filled(&vote.reason) => return Err(VoteError::ReasonMissing),
        Choice::ApproveWithConditions if !filled(&vote.conditions) => {
            return Err(VoteError::ConditionsMissing);
        }
        Choice::Decline => vote.conditions = None,
        Choice::ApproveWithConditions => vote.reason = None,
        Choice::Approve => {
            vote.conditions = None;
            vote.reason = None;
        }
    }
    Ok(vote)
}

/// The UAC's decision once the quorum is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub action: Action,
    /// Conditions of the approving votes (for `uacApproveWithConditions`).
    pub conditions: Vec<String>,
    /// Reasons of the declining votes (for `uacDecline`; never empty there).
    pub reasons: Vec<String>,
}

impl Outcome {
    /// The texts the decision carries: the decline reasons of a decline, else the conditions.
    pub fn into_texts(self) -> Vec<String> {
        if self.action == Action::UacDecline {
            self.reasons
        } else {
            self.conditions
        }
    }
}

/// Rule 2: `None` until `quorum` votes are cast.
pub fn tally(votes: &[Vote], quorum: u32) -> Option<Outcome> {
    if votes.is_empty() || (votes.len() as u64) < quorum as u64 {
        return None;
    }
    let texts = |choice: Choice, pick: fn(&Vote) -> &Option<String>| {
        votes
            .iter()
            .filter(|v| v.choice == choice)
            .filter_map(|v| pick(v).clone())
            .collect::<Vec<_>>()
    };
    let declines = votes.iter().filter(|v| v.choice == Choice::Decline).count();
    let approvals = votes.len() - declines;
    if approvals > declines {
        let conditions = texts(Choice::ApproveWithConditions, |v| &v.conditions);
        let action = if conditions.is_empty() {
            Action::UacApprove
        } else {
            Action::UacApproveWithConditions
        };
        Some(Outcome {
            action,
            conditions,
            reasons: Vec::new(),
        })
    } else {
        Some(Outcome {
            action: Action::UacDecline,
            conditions: Vec::new(),
            reasons: texts(Choice::Decline, |v| &v.reason),
        })
    }
}

/// Rule 4.
pub fn deadline(received: DateTime<Utc>, review_seconds: u64) -> DateTime<Utc> {
    received + Duration::seconds(review_seconds.min(i64::MAX as u64 / 1000) as i64)
}

pub fn is_overdue(state: State, deadline: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    state.awaits_site() && now > deadline
}

/// Rule 5: the applicant did not answer the conditions within `review_seconds` of the decision.
pub fn conditions_expired(
    state: State,
    decided_at: Option<DateTime<Utc>>,
    review_seconds: u64,
    now: DateTime<Utc>,
) -> bool {
    state == State::ConditionalApprovalPending
        && decided_at.is_some_and(|d| now > deadline(d, review_seconds))
}

/// How long before the deadline the reminder goes out.
pub fn reminder_lead(received: DateTime<Utc>, deadline: DateTime<Utc>) -> Duration {
    Duration::days(2).min((deadline - received) / 2)
}

pub fn reminder_due(
    state: State,
    received: DateTime<Utc>,
    deadline: DateTime<Utc>,
    now: DateTime<Utc>,
) -> bool {
    state.awaits_site() && now >= deadline - reminder_lead(received, deadline) && now <= deadline
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action as A;
    use State as S;

    #[test]
    fn only_the_documented_transitions_are_legal() {
        // Every (state, action) pair; the rows are the diagram in the module docs.
        let legal: &[(State, Action, State)] = &[
            (S::DizCheck, A::DizApprove, S::DizApproved),
            (
                S::DizCheck,
                A::DizApproveWithConditions,
                S::DizConditionCheck,
            ),
            (S::DizCheck, A::DizExclude, S::RequestedButExcluded),
            (S::DizApproved, A::UacApprove, S::UacApproved),
            (
                S::DizApproved,
                A::UacApproveWithConditions,
                S::ConditionalApprovalPending,
            ),
            (S::DizApproved, A::UacDecline, S::UacDeclined),
            (S::DizConditionCheck, A::UacApprove, S::UacApproved),
            (
                S::DizConditionCheck,
                A::UacApproveWithConditions,
                S::ConditionalApprovalPending,
            ),
            (S::DizConditionCheck, A::UacDecline, S::UacDeclined),
            (
                S::ConditionalApprovalPending,
                A::ConditionsAccepted,
                S::ConditionalApprovalAccepted,
            ),
            (
                S::ConditionalApprovalPending,
                A::ConditionsDeclined,
                S::ConditionalApprovalDeclined,
            ),
        ];
        let mut seen = 0;
        for from in State::ALL {
            for action in Action::ALL {
                let expected = legal
                    .iter()
                    .find(|(f, a, _)| *f == from && *a == action)
                    .map(|(_, _, to)| *to);
                match (transition(from, action), expected) {
                    (Ok(to), Some(want)) => {
                        assert_eq!(to, want, "{from:?} {action:?}");
                        seen += 1;
                    }
                    (Err(e), None) => {
                        assert_eq!(e.from, from.as_str());
                        assert!(!e.allowed.contains(&action), "{e}");
                        assert_eq!(e.allowed, allowed(from));
                    }
                    (got, want) => panic!("{from:?} {action:?}: got {got:?}, want {want:?}"),
                }
            }
        }
        assert_eq!(seen, legal.len());
    }

    #[test]
    fn an_illegal_transition_lists_the_allowed_ones() {
        let e = transition(S::DizCheck, A::UacApprove).expect_err("illegal");
        assert_eq!(
            e.to_string(),
            "uacApprove is not allowed in DIZ_CHECK; allowed: dizApprove, dizApproveWithConditions, dizExclude"
        );
        let e = transition(S::UacApproved, A::UacDecline).expect_err("final");
        assert!(
            e.to_string().ends_with("allowed: none (final state)"),
            "{e}"
        );
    }

    #[test]
    fn final_states_allow_nothing_and_open_states_something() {
        for s in State::ALL {
            assert_eq!(allowed(s).is_empty(), !s.is_open(), "{s:?}");
            assert_eq!(State::parse(s.as_str()), Some(s));
        }
        for a in Action::ALL {
            assert_eq!(Action::parse(a.as_str()), Some(a));
        }
    }

    fn vote(member: &str, choice: Choice, text: &str) -> Vote {
        Vote {
            member: member.into(),
            choice,
            conditions: (choice == Choice::ApproveWithConditions).then(|| text.into()),
            reason: (choice == Choice::Decline).then(|| text.into()),
        }
    }

    #[test]
    fn quorum_and_majority() {
        use Choice::*;
        struct Case {
            name: &'static str,
            votes: Vec<Vote>,
            quorum: u32,
            want: Option<Action>,
        }
        let cases = vec![
            Case {
                name: "no votes",
                votes: vec![],
                quorum: 1,
                want: None,
            },
            Case {
                name: "below quorum",
                votes: vec![vote("a", Approve, ""), vote("b", Approve, "")],
                quorum: 3,
                want: None,
            },
            Case {
                name: "unanimous approval",
                votes: vec![
                    vote("a", Approve, ""),
                    vote("b", Approve, ""),
                    vote("c", Approve, ""),
                ],
                quorum: 3,
                want: Some(A::UacApprove),
            },
            Case {
                name: "majority approval, one with conditions",
                votes: vec![
                    vote("a", Approve, ""),
                    vote("b", ApproveWithConditions, "no free text"),
                    vote("c", Decline, "too broad"),
                ],
                quorum: 3,
                want: Some(A::UacApproveWithConditions),
            },
            Case {
                name: "majority decline",
                votes: vec![
                    vote("a", Approve, ""),
                    vote("b", Decline, "x"),
                    vote("c", Decline, "y"),
                ],
                quorum: 3,
                want: Some(A::UacDecline),
            },
            Case {
                name: "tie declines",
                votes: vec![vote("a", Approve, ""), vote("b", Decline, "x")],
                quorum: 2,
                want: Some(A::UacDecline),
            },
            Case {
                name: "quorum 1",
                votes: vec![vote("a", Approve, "")],
                quorum: 1,
                want: Some(A::UacApprove),
            },
        ];
        for c in cases {
            let got = tally(&c.votes, c.quorum);
            assert_eq!(got.as_ref().map(|o| o.action), c.want, "{}", c.name);
        }
        let o = tally(
            &[
                vote("a", ApproveWithConditions, "aggregate only"),
                vote("b", Decline, "too broad"),
                vote("c", ApproveWithConditions, "no free text"),
            ],
            3,
        )
        .expect("decided");
        assert_eq!(o.conditions, vec!["aggregate only", "no free text"]);
        let o = tally(
            &[vote("a", Decline, "too broad"), vote("b", Approve, "")],
            2,
        )
        .expect("decided");
        assert_eq!(o.reasons, vec!["too broad"]);
    }

    #[test]
    fn a_vote_needs_its_reason_or_conditions() {
        let mut v = vote("a", Choice::Decline, "x");
        v.reason = Some("  ".into());
        assert_eq!(check_vote(v), Err(VoteError::ReasonMissing));
        let mut v = vote("a", Choice::ApproveWithConditions, "x");
        v.conditions = None;
        assert_eq!(check_vote(v), Err(VoteError::ConditionsMissing));
        let mut v = vote("a", Choice::Approve, "");
        v.reason = Some("stray".into());
        assert_eq!(check_vote(v).expect("ok").reason, None);
    }

    #[test]
    fn deadline_overdue_and_reminder() {
        let t = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .expect("time")
                .with_timezone(&Utc)
        };
        let received = t("2026-11-01T00:00:00Z");
        let due = deadline(received, 14 * 86_400);
        assert_eq!(due, t("2026-11-15T00:00:00Z"));
        struct Case {
            state: State,
            now: &'static str,
            overdue: bool,
            remind: bool,
        }
        let cases = [
            Case {
                state: S::DizCheck,
                now: "2026-11-10T00:00:00Z",
                overdue: false,
                remind: false,
            },
            Case {
                state: S::DizCheck,
                now: "2026-11-13T00:00:00Z",
                overdue: false,
                remind: true,
            },
            Case {
                state: S::DizApproved,
                now: "2026-11-15T00:00:00Z",
                overdue: false,
                remind: true,
            },
            Case {
                state: S::DizApproved,
                now: "2026-11-15T00:00:01Z",
                overdue: true,
                remind: false,
            },
            Case {
                state: S::DizConditionCheck,
                now: "2026-12-01T00:00:00Z",
                overdue: true,
                remind: false,
            },
            // Waiting for the applicant, not for the site: neither overdue nor reminded.
            Case {
                state: S::ConditionalApprovalPending,
                now: "2026-11-14T00:00:00Z",
                overdue: false,
                remind: false,
            },
            Case {
                state: S::ConditionalApprovalPending,
                now: "2026-12-01T00:00:00Z",
                overdue: false,
                remind: false,
            },
            Case {
                state: S::UacApproved,
                now: "2026-12-01T00:00:00Z",
                overdue: false,
                remind: false,
            },
            Case {
                state: S::UacDeclined,
                now: "2026-11-14T00:00:00Z",
                overdue: false,
                remind: false,
            },
        ];
        for c in cases {
            let now = t(c.now);
            assert_eq!(
                is_overdue(c.state, due, now),
                c.overdue,
                "{:?} {}",
                c.state,
                c.now
            );
            assert_eq!(
                reminder_due(c.state, received, due, now),
                c.remind,
                "{:?} {}",
                c.state,
                c.now
            );
        }
        // Conditions expire a review period after the decision, only while pending.
        let decided = Some(t("2026-11-10T00:00:00Z"));
        let expired = |state, now| conditions_expired(state, decided, 14 * 86_400, t(now));
        assert!(!expired(
            S::ConditionalApprovalPending,
            "2026-11-24T00:00:00Z"
        ));
        assert!(expired(
            S::ConditionalApprovalPending,
            "2026-11-24T00:00:01Z"
        ));
        assert!(!expired(
            S::ConditionalApprovalAccepted,
            "2026-12-24T00:00:00Z"
        ));
        assert!(!conditions_expired(
            S::ConditionalApprovalPending,
            None,
            1,
            t("2030-01-01T00:00:00Z")
        ));
        // A short review period: the reminder comes at half of it.
        let due = deadline(received, 86_400);
        assert_eq!(reminder_lead(received, due), Duration::hours(12));
    }
}
